"""lazytorch.nn.functional against PyTorch: forward values, input gradients, errors.

Every check builds the same computation in both libraries from the same numpy data, compares the
outputs, then back-propagates a random-weighted sum of the output and compares the gradients of
every floating input (the forward value and the gradients are realized as one program). Shapes
are few and shared between tests (and with test_nn_modules.py) because each new graph costs
kernel compiles.
"""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import lazytorch as lt  # noqa: E402
import lazytorch.nn.functional as F  # noqa: E402
from conftest import assert_close  # noqa: E402

RNG = np.random.default_rng(1234)


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def randint(high, *shape):
    return RNG.integers(0, high, shape).astype(np.int64)


def check_against_torch(lazy_fn, torch_fn, *arrays, grad=None, rtol=1e-4, atol=1e-5):
    """Compare lazy_fn(*lazytorch tensors) with torch_fn(*torch tensors): value, then the gradients
    of sum(out * c) for a random c w.r.t. the float inputs (`grad`: which inputs, default all)."""
    grad = [a.dtype.kind == "f" for a in arrays] if grad is None else list(grad)
    lazy_in = [lt.tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad)]
    torch_in = [torch.tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad)]
    got, want = lazy_fn(*lazy_in), torch_fn(*torch_in)
    if any(grad):
        c = RNG.standard_normal(tuple(want.shape)).astype(np.float32) if want.dim() else np.float32(1.5)
        (got * lt.tensor(c)).sum().backward()
        (want * torch.tensor(c)).sum().backward()
    assert_close(got, want.detach(), reduction=True, rtol=rtol, atol=atol)
    for i, (a, b) in enumerate(zip(lazy_in, torch_in)):
        if b.grad is not None:
            assert a.grad is not None, f"no gradient for input {i}"
            assert_close(a.grad, b.grad, reduction=True, rtol=rtol, atol=atol)
    return got


def raises_like_torch(lazy_call, torch_call):
    """Both calls raise the same exception type with the same message."""
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)) as got:
        lazy_call()
    assert str(got.value) == str(expected.value)


X = randn(3, 5, scale=3.0)
IMG = randn(2, 3, 7, 7)
LOGITS = randn(4, 5)
LABELS = np.array([1, 0, 4, 2], np.int64)
CLASS_W = np.abs(randn(5)) + 0.5


# ---------------------------------------------------------------------------------------------
# activations

ACTIVATIONS = {
    "relu": (F.relu, TF.relu),
    "relu6": (F.relu6, TF.relu6),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "celu": (F.celu, TF.celu),
    "selu": (F.selu, TF.selu),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (F.silu, TF.silu),
    "mish": (F.mish, TF.mish),
    "softplus": (lambda x: F.softplus(x, 2.0, 3.0), lambda x: TF.softplus(x, 2.0, 3.0)),
    "hardtanh": (lambda x: F.hardtanh(x, -2.0, 1.5), lambda x: TF.hardtanh(x, -2.0, 1.5)),
    "hardswish": (F.hardswish, TF.hardswish),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid),
    "logsigmoid": (F.logsigmoid, TF.logsigmoid),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "softsign": (F.softsign, TF.softsign),
    "threshold": (lambda x: F.threshold(x, 0.5, -1.0), lambda x: TF.threshold(x, 0.5, -1.0)),
    "glu": (lambda x: F.glu(x, 0), lambda x: TF.glu(x, 0)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name):
    lazy_fn, torch_fn = ACTIVATIONS[name]
    x = X if name != "glu" else randn(4, 5)
    check_against_torch(lazy_fn, torch_fn, x)


def test_relu_family_gradient_at_kinks_is_torchs():
    x = np.array([-1.0, 0.0, 1.0, 6.0, -3.0, 3.0], np.float32)
    for lazy_fn, torch_fn in (ACTIVATIONS["relu"], ACTIVATIONS["relu6"], ACTIVATIONS["hardswish"]):
        check_against_torch(lazy_fn, torch_fn, x)


def test_softplus_and_logsigmoid_are_stable_for_large_inputs():
    x = np.array([-200.0, -30.0, 0.0, 30.0, 200.0], np.float32)
    for lazy_fn, torch_fn in (ACTIVATIONS["softplus"], ACTIVATIONS["logsigmoid"], (F.mish, TF.mish)):
        check_against_torch(lazy_fn, torch_fn, x)


@pytest.mark.parametrize("name,dim", [("softmax", 0), ("log_softmax", 1), ("softmin", -1)])
def test_softmax_family(name, dim):
    check_against_torch(lambda x: getattr(F, name)(x, dim), lambda x: getattr(TF, name)(x, dim), X)


def test_softmax_implicit_dim_warns_and_picks_torchs_dim():
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        got = F.softmax(lt.tensor(X))
    assert_close(got, TF.softmax(torch.tensor(X), 1))


def test_relu_inplace_rebinds_the_tensor():
    x = lt.tensor(X.copy())
    out = F.relu(x, inplace=True)
    assert out is x
    np.testing.assert_array_equal(x.numpy(), np.maximum(X, 0))


# ---------------------------------------------------------------------------------------------
# linear, bilinear, dropout, embedding, one_hot

def test_linear_2d_and_batched():
    w, b = randn(4, 5), randn(4)
    check_against_torch(F.linear, TF.linear, X, w, b)
    check_against_torch(F.linear, TF.linear, randn(2, 3, 5), w, b)
    check_against_torch(lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), randn(5), w)


def test_linear_wrong_in_features_error():
    raises_like_torch(lambda: F.linear(lt.randn(4, 3), lt.randn(2, 5)),
                      lambda: TF.linear(torch.randn(4, 3), torch.randn(2, 5)))
    raises_like_torch(lambda: F.linear(lt.randn(2, 4, 3), lt.randn(2, 5)),
                      lambda: TF.linear(torch.randn(2, 4, 3), torch.randn(2, 5)))


def test_bilinear():
    check_against_torch(F.bilinear, TF.bilinear, randn(3, 4), randn(3, 2), randn(5, 4, 2), randn(5))


def test_dropout_train_and_eval():
    lt.manual_seed(0)
    x = lt.ones(4000)
    y = F.dropout(x, 0.25).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert F.dropout(x, 0.25, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)


def test_dropout_masks_differ_between_calls_and_follow_the_seed():
    x = lt.ones(64)
    lt.manual_seed(3)
    a, b = F.dropout(x).numpy(), F.dropout(x).numpy()
    lt.manual_seed(3)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(F.dropout(x).numpy(), a)


def test_dropout_gradient_uses_the_same_mask():
    x = lt.tensor(X.copy(), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (y.detach().numpy() != 0) * 2.0)


def test_dropout2d_zeroes_whole_channels():
    lt.manual_seed(1)
    y = F.dropout2d(lt.ones(8, 16, 3, 3), 0.5).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()


def test_embedding_with_padding_idx():
    weight = randn(6, 3)
    ids = np.array([[0, 2, 1], [1, 5, 1]], np.int64)
    check_against_torch(lambda w, i: F.embedding(i, w, padding_idx=1), lambda w, i: TF.embedding(i, w, padding_idx=1),
                        weight, ids)


def test_embedding_errors():
    raises_like_torch(lambda: F.embedding(lt.tensor([0.5]), lt.randn(6, 3)),
                      lambda: TF.embedding(torch.tensor([0.5]), torch.randn(6, 3)))
    raises_like_torch(lambda: F.embedding(lt.tensor([6]), lt.randn(6, 3)),
                      lambda: TF.embedding(torch.tensor([6]), torch.randn(6, 3)))


def test_one_hot():
    ids = np.array([[0, 3], [2, 1]], np.int64)
    assert_close(F.one_hot(lt.tensor(ids), 5), TF.one_hot(torch.tensor(ids), 5))
    assert_close(F.one_hot(lt.tensor(ids)), TF.one_hot(torch.tensor(ids)))
    raises_like_torch(lambda: F.one_hot(lt.tensor(ids), 2), lambda: TF.one_hot(torch.tensor(ids), 2))
    raises_like_torch(lambda: F.one_hot(lt.tensor([1.0])), lambda: TF.one_hot(torch.tensor([1.0])))


# ---------------------------------------------------------------------------------------------
# convolution

CONV_CASES = {
    "padding": ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=1)),
    "stride_dilation": ((2, 3, 7, 7), (4, 3, 3, 3), dict(stride=2, padding=2, dilation=2)),
    "same_even_kernel": ((2, 3, 7, 7), (4, 3, 2, 2), dict(padding="same")),
    "valid_rect_stride": ((2, 3, 7, 7), (4, 3, 3, 2), dict(padding="valid", stride=(2, 1))),
    "groups": ((2, 4, 5, 5), (6, 2, 3, 3), dict(groups=2, padding=(1, 0))),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv2d(case):
    x_shape, w_shape, kwargs = CONV_CASES[case]
    check_against_torch(lambda x, w, b: F.conv2d(x, w, b, **kwargs), lambda x, w, b: TF.conv2d(x, w, b, **kwargs),
                        randn(*x_shape), randn(*w_shape), randn(w_shape[0]))


def test_conv2d_unbatched_and_without_bias():
    check_against_torch(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
                        randn(3, 7, 7), randn(4, 3, 3, 3))


def test_conv1d():
    check_against_torch(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
                        lambda x, w, b: TF.conv1d(x, w, b, stride=2, padding=1), randn(2, 3, 9), randn(4, 3, 3),
                        randn(4))


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1), dict(groups=3, dilation=2)],
                         ids=["stride_output_padding", "groups_dilation"])
def test_conv_transpose2d(kwargs):
    groups = kwargs.get("groups", 1)
    check_against_torch(lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs),
                        lambda x, w, b: TF.conv_transpose2d(x, w, b, **kwargs),
                        randn(2, 3, 4, 4), randn(3, 6 // groups, 3, 3), randn(6))


@pytest.mark.parametrize("call", [
    lambda F_, T_: F_.conv2d(T_.randn(2, 4, 10, 10), T_.randn(8, 3, 3, 3)),
    lambda F_, T_: F_.conv2d(T_.randn(2, 3), T_.randn(8, 3, 3, 3)),
    lambda F_, T_: F_.conv2d(T_.randn(2, 3, 2, 2), T_.randn(8, 3, 3, 3)),
    lambda F_, T_: F_.conv2d(T_.randn(2, 3, 10, 10), T_.randn(8, 2, 3, 3), groups=2),
    lambda F_, T_: F_.conv1d(T_.randn(2, 3, 10, 10), T_.randn(8, 3, 3)),
    lambda F_, T_: F_.conv_transpose2d(T_.randn(2, 4, 10, 10), T_.randn(3, 8, 3, 3)),
    lambda F_, T_: F_.conv2d(T_.randn(1, 3, 5, 5), T_.randn(4, 3, 3, 3), T_.randn(3)),
], ids=["channels", "dims", "kernel_too_big", "groups", "conv1d_dims", "transposed_channels", "bias"])
def test_conv_errors(call):
    raises_like_torch(lambda: call(F, lt), lambda: call(TF, torch))


def test_conv2d_same_padding_with_stride_is_an_error():
    raises_like_torch(lambda: F.conv2d(lt.randn(1, 3, 5, 5), lt.randn(2, 3, 3, 3), stride=2, padding="same"),
                      lambda: TF.conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), stride=2, padding="same"))


# ---------------------------------------------------------------------------------------------
# pooling and windows

POOL_CASES = {
    "max_3_2_1": (lambda F_, x: F_.max_pool2d(x, 3, 2, 1)),
    "max_ceil": (lambda F_, x: F_.max_pool2d(x, 2, ceil_mode=True)),
    "max_dilation": (lambda F_, x: F_.max_pool2d(x, 2, 1, dilation=2)),
    "avg_3_2_1": (lambda F_, x: F_.avg_pool2d(x, 3, 2, 1)),
    "avg_exclude_pad_ceil": (lambda F_, x: F_.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
    "avg_divisor_override": (lambda F_, x: F_.avg_pool2d(x, 2, divisor_override=3)),
    "adaptive_avg_3": (lambda F_, x: F_.adaptive_avg_pool2d(x, 3)),
    "adaptive_avg_1": (lambda F_, x: F_.adaptive_avg_pool2d(x, 1)),
    "adaptive_avg_none": (lambda F_, x: F_.adaptive_avg_pool2d(x, (None, 2))),
    "adaptive_max": (lambda F_, x: F_.adaptive_max_pool2d(x, (2, 3))),
    "max_pool1d": (lambda F_, x: F_.max_pool1d(x.flatten(2), 4, 3, 2)),
    "avg_pool1d": (lambda F_, x: F_.avg_pool1d(x.flatten(2), 3)),
    "unfold": (lambda F_, x: F_.unfold(x, 3, padding=1, stride=2)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling(case):
    call = POOL_CASES[case]
    check_against_torch(lambda x: call(F, x), lambda x: call(TF, x), IMG)


def test_max_pool2d_indices():
    got_values, got_indices = F.max_pool2d(lt.tensor(IMG), 3, 2, 1, return_indices=True)
    want_values, want_indices = TF.max_pool2d(torch.tensor(IMG), 3, 2, 1, return_indices=True)
    assert_close(got_values, want_values)
    assert_close(got_indices, want_indices)


def test_fold_is_unfolds_adjoint():
    check_against_torch(lambda c: F.fold(c, (5, 5), 2), lambda c: TF.fold(c, (5, 5), 2), randn(2, 12, 16))


def test_pool_errors():
    raises_like_torch(lambda: F.max_pool2d(lt.randn(1, 1, 4, 4), 3, padding=2),
                      lambda: TF.max_pool2d(torch.randn(1, 1, 4, 4), 3, padding=2))
    raises_like_torch(lambda: F.max_pool2d(lt.randn(1, 1, 2, 2), 3),
                      lambda: TF.max_pool2d(torch.randn(1, 1, 2, 2), 3))
    raises_like_torch(lambda: F.max_pool2d(lt.randn(4, 4), 2), lambda: TF.max_pool2d(torch.randn(4, 4), 2))


# ---------------------------------------------------------------------------------------------
# padding and interpolation

@pytest.mark.parametrize("mode,pads", [("constant", (1, 2, 0, 1)), ("reflect", (1, 2, 2, 1)),
                                       ("replicate", (1, 2, 2, 1)), ("circular", (1, 2, 2, 1)),
                                       ("constant", (-1, 2, 1, -2))])
def test_pad(mode, pads):
    value = 2.5 if mode == "constant" else None
    check_against_torch(lambda x: F.pad(x, pads, mode, value), lambda x: TF.pad(x, pads, mode, value), IMG)


def test_pad_errors():
    raises_like_torch(lambda: F.pad(lt.randn(2, 3), (1, 1, 1)), lambda: TF.pad(torch.randn(2, 3), (1, 1, 1)))
    raises_like_torch(lambda: F.pad(lt.randn(2, 3), (3, 3), mode="reflect"),
                      lambda: TF.pad(torch.randn(2, 3), (3, 3), mode="reflect"))


INTERPOLATIONS = {
    "nearest_size": dict(size=(5, 9)),
    "nearest_scale": dict(scale_factor=1.5),
    "nearest_exact": dict(size=(4, 10), mode="nearest-exact"),
    "bilinear_scale": dict(scale_factor=1.5, mode="bilinear"),
    "bilinear_align_corners": dict(size=(4, 9), mode="bilinear", align_corners=True),
}


@pytest.mark.parametrize("case", sorted(INTERPOLATIONS))
def test_interpolate(case):
    kwargs = INTERPOLATIONS[case]
    check_against_torch(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs), IMG)


def test_interpolate_linear_1d():
    check_against_torch(lambda x: F.interpolate(x, size=11, mode="linear"),
                        lambda x: TF.interpolate(x, size=11, mode="linear"), randn(2, 3, 7))


def test_interpolate_errors():
    raises_like_torch(lambda: F.interpolate(lt.randn(1, 1, 4), size=3, mode="bilinear"),
                      lambda: TF.interpolate(torch.randn(1, 1, 4), size=3, mode="bilinear"))
    raises_like_torch(lambda: F.interpolate(lt.randn(1, 1, 4, 4), size=3, align_corners=True),
                      lambda: TF.interpolate(torch.randn(1, 1, 4, 4), size=3, align_corners=True))


# ---------------------------------------------------------------------------------------------
# normalization

def test_batch_norm_training_updates_running_stats():
    x = randn(4, 3, 2, 2)
    weight, bias = randn(3), randn(3)
    lm, lv = lt.zeros(3), lt.ones(3)
    tm, tv = torch.zeros(3), torch.ones(3)
    check_against_torch(lambda x, w, b: F.batch_norm(x, lm, lv, w, b, True, 0.2),
                        lambda x, w, b: TF.batch_norm(x, tm, tv, w, b, True, 0.2), x, weight, bias)
    assert_close(lm, tm)
    assert_close(lv, tv)


def test_batch_norm_eval_uses_running_stats():
    mean, var = lt.tensor(randn(3)), lt.tensor(np.abs(randn(3)) + 0.5)
    check_against_torch(lambda x, w: F.batch_norm(x, mean, var, w, None, False),
                        lambda x, w: TF.batch_norm(x, torch.tensor(mean.numpy()), torch.tensor(var.numpy()), w, None,
                                                   False), randn(4, 3, 2, 2), randn(3))


def test_batch_norm_errors():
    raises_like_torch(lambda: F.batch_norm(lt.randn(1, 3), None, None, training=True),
                      lambda: TF.batch_norm(torch.randn(1, 3), None, None, training=True))
    raises_like_torch(lambda: F.batch_norm(lt.randn(4, 5), lt.zeros(3), lt.ones(3)),
                      lambda: TF.batch_norm(torch.randn(4, 5), torch.zeros(3), torch.ones(3)))


def test_layer_norm():
    check_against_torch(lambda x, w, b: F.layer_norm(x, (2, 2), w, b), lambda x, w, b: TF.layer_norm(x, (2, 2), w, b),
                        randn(4, 3, 2, 2), randn(2, 2), randn(2, 2))
    check_against_torch(lambda x: F.layer_norm(x, (5,)), lambda x: TF.layer_norm(x, (5,)), X)
    raises_like_torch(lambda: F.layer_norm(lt.randn(2, 3), (4,)), lambda: TF.layer_norm(torch.randn(2, 3), (4,)))


def test_group_norm():
    check_against_torch(lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b),
                        randn(2, 6, 5), randn(6), randn(6))
    raises_like_torch(lambda: F.group_norm(lt.randn(2, 6, 4), 4), lambda: TF.group_norm(torch.randn(2, 6, 4), 4))


def test_rms_norm():
    check_against_torch(lambda x, w: F.rms_norm(x, (5,), w), lambda x, w: TF.rms_norm(x, (5,), w), X, randn(5))


def test_normalize_and_cosine_similarity():
    check_against_torch(lambda x: F.normalize(x, 1.0, 0), lambda x: TF.normalize(x, 1.0, 0), X)
    check_against_torch(lambda a, b: F.cosine_similarity(a, b, dim=-1),
                        lambda a, b: TF.cosine_similarity(a, b, dim=-1), X, randn(1, 5))


# ---------------------------------------------------------------------------------------------
# losses

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses(name, reduction):
    extra = {"smooth_l1_loss": dict(beta=0.5), "huber_loss": dict(delta=0.7)}.get(name, {})
    check_against_torch(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **extra),
                        lambda a, b: getattr(TF, name)(a, b, reduction=reduction, **extra), LOGITS, randn(4, 5))


def test_regression_loss_broadcast_warning_and_error():
    for fn, tfn in ((F.mse_loss, TF.mse_loss), (F.l1_loss, TF.l1_loss)):
        with pytest.warns(UserWarning) as got:
            fn(lt.randn(3, 1), lt.randn(3))
        with pytest.warns(UserWarning) as want:
            tfn(torch.randn(3, 1), torch.randn(3))
        assert str(got[0].message) == str(want[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_against_torch(F.mse_loss, TF.mse_loss, randn(4, 1), randn(4))
        raises_like_torch(lambda: F.mse_loss(lt.randn(3, 2), lt.randn(3)),
                          lambda: TF.mse_loss(torch.randn(3, 2), torch.randn(3)))
    raises_like_torch(lambda: F.mse_loss(lt.randn(3), lt.randn(3), reduction="foo"),
                      lambda: TF.mse_loss(torch.randn(3), torch.randn(3), reduction="foo"))


CE_CASES = {
    "plain": dict(),
    "sum": dict(reduction="sum"),
    "none": dict(reduction="none"),
    "weight_ignore": dict(weight=True, ignore_index=4),
    "smoothing": dict(label_smoothing=0.2),
    "smoothing_weight_ignore_none": dict(label_smoothing=0.2, weight=True, ignore_index=0, reduction="none"),
    "smoothing_weight_ignore": dict(label_smoothing=0.1, weight=True, ignore_index=0),
}


@pytest.mark.parametrize("case", sorted(CE_CASES))
def test_cross_entropy_class_indices(case):
    kwargs = dict(CE_CASES[case])
    if kwargs.pop("weight", False):
        check_against_torch(lambda x, t, w: F.cross_entropy(x, t, w, **kwargs),
                            lambda x, t, w: TF.cross_entropy(x, t, w, **kwargs), LOGITS, LABELS, CLASS_W,
                            grad=(True, False, False))
    else:
        check_against_torch(lambda x, t: F.cross_entropy(x, t, **kwargs),
                            lambda x, t: TF.cross_entropy(x, t, **kwargs), LOGITS, LABELS)


@pytest.mark.parametrize("kwargs", [dict(), dict(label_smoothing=0.3, weight=True), dict(reduction="none")],
                         ids=["plain", "smoothing_weight", "none"])
def test_cross_entropy_probabilities(kwargs):
    kwargs = dict(kwargs)
    probs = np.abs(randn(4, 5))
    probs /= probs.sum(1, keepdims=True)
    if kwargs.pop("weight", False):
        check_against_torch(lambda x, p, w: F.cross_entropy(x, p, w, **kwargs),
                            lambda x, p, w: TF.cross_entropy(x, p, w, **kwargs), LOGITS, probs, CLASS_W,
                            grad=(True, True, False))
    else:
        check_against_torch(lambda x, p: F.cross_entropy(x, p, **kwargs),
                            lambda x, p: TF.cross_entropy(x, p, **kwargs), LOGITS, probs)


def test_cross_entropy_spatial_and_unbatched():
    check_against_torch(F.cross_entropy, TF.cross_entropy, randn(2, 5, 3, 2), randint(5, 2, 3, 2))
    check_against_torch(F.cross_entropy, TF.cross_entropy, randn(5), np.array(3, np.int64), grad=(False, False))


@pytest.mark.parametrize("target", [
    lambda T_: T_.rand(4), lambda T_: T_.randint(0, 5, (4,)).float(), lambda T_: (T_.rand(4, 5) * 4).long(),
    lambda T_: T_.randint(0, 5, (3,)), lambda T_: T_.randint(0, 5, (4, 2)), lambda T_: T_.tensor([0, 1, 2, 7]),
    lambda T_: T_.tensor([0, 1, 2, 3], dtype=T_.int32),
], ids=["float_wrong_shape", "float_indices", "long_probabilities", "batch_mismatch", "multi_target", "out_of_range",
        "int32"])
def test_cross_entropy_target_errors(target):
    raises_like_torch(lambda: F.cross_entropy(lt.randn(4, 5), target(lt)),
                      lambda: TF.cross_entropy(torch.randn(4, 5), target(torch)))


def test_cross_entropy_argument_errors():
    raises_like_torch(lambda: F.cross_entropy(lt.randn(4, 5), lt.rand(4, 5), ignore_index=1),
                      lambda: TF.cross_entropy(torch.randn(4, 5), torch.rand(4, 5), ignore_index=1))
    raises_like_torch(lambda: F.cross_entropy(lt.randn(2, 3), lt.tensor([0, 1]), label_smoothing=1.5),
                      lambda: TF.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), label_smoothing=1.5))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_nll_loss(reduction):
    labels = LABELS.copy()
    labels[1] = -100
    check_against_torch(lambda x, t, w: F.nll_loss(x, t, w, reduction=reduction),
                        lambda x, t, w: TF.nll_loss(x, t, w, reduction=reduction), LOGITS, labels, CLASS_W,
                        grad=(True, False, False))
    raises_like_torch(lambda: F.nll_loss(lt.randn(4, 5, 2), lt.randint(0, 5, (4, 3))),
                      lambda: TF.nll_loss(torch.randn(4, 5, 2), torch.randint(0, 5, (4, 3))))


def test_binary_cross_entropy():
    probs = 1 / (1 + np.exp(-LOGITS))
    targets = RNG.random((4, 5)).astype(np.float32)
    check_against_torch(lambda p, t, w: F.binary_cross_entropy(p, t, w),
                        lambda p, t, w: TF.binary_cross_entropy(p, t, w), probs, targets, CLASS_W,
                        grad=(True, True, False))
    check_against_torch(lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
                        lambda p, t: TF.binary_cross_entropy(p, t, reduction="sum"),
                        np.array([0.0, 1.0, 0.5], np.float32), np.array([1.0, 0.0, 1.0], np.float32), grad=(False, False))
    raises_like_torch(lambda: F.binary_cross_entropy(lt.rand(3, 1), lt.rand(3)),
                      lambda: TF.binary_cross_entropy(torch.rand(3, 1), torch.rand(3)))


@pytest.mark.parametrize("pos_weight", [False, True])
def test_binary_cross_entropy_with_logits(pos_weight):
    targets = RNG.random((4, 5)).astype(np.float32)
    logits = LOGITS * 10    # saturated logits must stay exact
    logits[0, 0] = 0.0      # and the gradient at exactly 0 is sigmoid(0)-t
    if pos_weight:
        check_against_torch(lambda x, t, p: F.binary_cross_entropy_with_logits(x, t, pos_weight=p),
                            lambda x, t, p: TF.binary_cross_entropy_with_logits(x, t, pos_weight=p),
                            logits, targets, CLASS_W, grad=(True, True, False))
    else:
        check_against_torch(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
                            lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction="none"),
                            logits, targets)
    raises_like_torch(lambda: F.binary_cross_entropy_with_logits(lt.rand(3, 1), lt.rand(3)),
                      lambda: TF.binary_cross_entropy_with_logits(torch.rand(3, 1), torch.rand(3)))


@pytest.mark.parametrize("reduction,log_target", [("batchmean", False), ("sum", True), ("none", False)])
def test_kl_div(reduction, log_target):
    probs = np.abs(randn(4, 5))
    probs /= probs.sum(1, keepdims=True)
    probs[0, 0] = 0.0                   # xlogy: a zero target contributes 0
    target = np.log(probs + 1e-3) if log_target else probs
    check_against_torch(lambda i, t: F.kl_div(i, t, reduction=reduction, log_target=log_target),
                        lambda i, t: TF.kl_div(i, t, reduction=reduction, log_target=log_target),
                        TF.log_softmax(torch.tensor(LOGITS), 1).numpy(), target, grad=(True, log_target))


def test_kl_div_mean_warns_like_torch():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(lt.randn(2, 3), lt.rand(2, 3))


# ---------------------------------------------------------------------------------------------
# attention

Q, K, V = randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4)


def test_scaled_dot_product_attention():
    check_against_torch(F.scaled_dot_product_attention, TF.scaled_dot_product_attention, Q, K, V)
    check_against_torch(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
                        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3), Q, K, V)


def test_scaled_dot_product_attention_masks():
    allowed = RNG.random((3, 5)) < 0.6
    allowed[1] = False          # a row that attends to nothing gives zeros (torch's safe softmax)
    check_against_torch(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                        lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m), Q, K, V, allowed)
    # float masks (added to the scores) are covered by test_nn_modules' MultiheadAttention cases
    q, mask = randn(2, 3, 4), np.ones((3, 3), np.bool_)
    raises_like_torch(
        lambda: F.scaled_dot_product_attention(lt.tensor(q), lt.tensor(q), lt.tensor(q), lt.tensor(mask), 0.0, True),
        lambda: TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(q), torch.tensor(q),
                                                torch.tensor(mask), 0.0, True))


def test_scaled_dot_product_attention_grouped_query():
    check_against_torch(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                        randn(1, 4, 3, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 4), grad=(False, False, False))
