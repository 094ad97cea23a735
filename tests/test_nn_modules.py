"""lazytorch.nn modules against PyTorch: registration, traversal, state dicts, repr, every layer's
output and parameter gradients (weights copied from the PyTorch module), training-mode state
(BatchNorm running statistics, Dropout), initializers and gradient clipping.

Layers are checked on the shapes test_nn_functional.py uses, so most graphs are compiled once.
"""
import copy
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
import lazytorch.nn as nn  # noqa: E402
from conftest import assert_close  # noqa: E402
from test_nn_functional import IMG, LABELS, LOGITS, X, randn, raises_like_torch  # noqa: E402

TNN = torch.nn


def paired(build):
    """The same module in both libraries, lazytorch's holding a copy of torch's weights."""
    lazy, ref = build(nn), build(TNN)
    lazy.load_state_dict(ref.state_dict())
    return lazy, ref


def check_module(lazy, ref, *arrays, grad_inputs=True, rtol=1e-4, atol=1e-5):
    """Same forward value, same input and parameter gradients of sum(out * c)."""
    lazy_in = [lt.tensor(a.copy(), requires_grad=grad_inputs and a.dtype.kind == "f") for a in arrays]
    torch_in = [torch.tensor(a.copy(), requires_grad=grad_inputs and a.dtype.kind == "f") for a in arrays]
    got, want = lazy(*lazy_in), ref(*torch_in)
    c = np.random.default_rng(7).standard_normal(tuple(want.shape)).astype(np.float32)
    (got * lt.tensor(c)).sum().backward()
    (want * torch.tensor(c)).sum().backward()
    assert_close(got, want.detach(), reduction=True, rtol=rtol, atol=atol)
    for a, b in zip(lazy_in, torch_in):
        if b.grad is not None:
            assert_close(a.grad, b.grad, reduction=True, rtol=rtol, atol=atol)
    lazy_params, ref_params = dict(lazy.named_parameters()), dict(ref.named_parameters())
    assert list(lazy_params) == list(ref_params)
    for name, p in ref_params.items():
        if p.grad is not None:
            assert lazy_params[name].grad is not None, f"no gradient for {name}"
            assert_close(lazy_params[name].grad, p.grad, reduction=True, rtol=rtol, atol=atol)
    return got


def small_cnn(lib):
    return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Conv2d(4, 6, 3, stride=2, bias=False), lib.Flatten(), lib.Dropout(0.0),
                          lib.Linear(6, 5))


def mlp(lib):
    return lib.Sequential(lib.Linear(5, 8), lib.GELU(), lib.LayerNorm(8), lib.Linear(8, 3))


def net(lib):
    """A custom module with nested containers, buffers and a direct parameter."""
    tensors = lt if lib is nn else torch

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.features = small_cnn(lib)
            self.heads = lib.ModuleList([lib.Linear(5, 2) for _ in range(3)] + [lib.Linear(5, 3)])
            self.extra = lib.ModuleDict({"act": lib.Tanh(), "proj": lib.Linear(2, 2, bias=False)})
            self.register_buffer("scale", tensors.ones(1))
            self.register_buffer("scratch", tensors.zeros(2), persistent=False)
            self.alpha = lib.Parameter(tensors.zeros(2))

        def forward(self, x):
            h = self.features(x)
            return self.extra["proj"](self.extra["act"](self.heads[0](h))) * self.scale + self.alpha

    return Net()


# ---------------------------------------------------------------------------------------------
# Parameter and registration

def test_parameter():
    p = nn.Parameter(lt.tensor([1.0, 2.0]))
    assert isinstance(p, lt.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p) == repr(TNN.Parameter(torch.tensor([1.0, 2.0])))
    assert type(p * 2) is lt.Tensor
    frozen = nn.Parameter(lt.tensor([1, 2]), requires_grad=False)
    assert not frozen.requires_grad
    clone = copy.deepcopy(p)
    assert isinstance(clone, nn.Parameter) and clone is not p and clone.requires_grad
    restored = pickle.loads(pickle.dumps(p))
    assert isinstance(restored, nn.Parameter) and restored.tolist() == [1.0, 2.0]


def test_parameter_from_a_graph_is_a_distinct_leaf():
    x = lt.tensor([1.0, 2.0], requires_grad=True)
    p = nn.Parameter(x * 3)
    assert p.is_leaf and p.grad_fn is None
    (p * p).sum().backward()
    assert p.grad.tolist() == [6.0, 12.0] and x.grad is None


def test_setattr_registers_parameters_modules_buffers():
    m = nn.Module()
    m.w = nn.Parameter(lt.zeros(2))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("stat", lt.zeros(3))
    m.register_buffer("temp", lt.zeros(1), persistent=False)
    m.marked = nn.Buffer(lt.ones(1))
    m.plain = 3
    assert list(m._parameters) == ["w"] and list(m._modules) == ["sub"]
    assert list(m._buffers) == ["stat", "temp", "marked"] and m.plain == 3
    assert list(m.state_dict()) == ["w", "stat", "marked", "sub.weight", "sub.bias"]
    m.stat = lt.ones(3)                        # assigning a tensor to a buffer name keeps it a buffer
    assert m._buffers["stat"].tolist() == [1.0] * 3
    m.w = None
    assert m._parameters["w"] is None and "w" not in m.state_dict()
    del m.sub
    assert "sub" not in m._modules


@pytest.mark.parametrize("action", [
    lambda lib, T_: setattr(lib.Linear(3, 2), "weight", 3),
    lambda lib, T_: lib.Linear(3, 2).register_buffer("weight", T_.rand(1)),
    lambda lib, T_: lib.Linear(3, 2).register_buffer("x", 3),
    lambda lib, T_: lib.Linear(3, 2).foo,
    lambda lib, T_: lib.Linear(3, 2).train(1),
    lambda lib, T_: lib.Sequential(lib.Linear(2, 2))[3],
    lambda lib, T_: lib.ModuleList([lib.Linear(2, 2)])[3],
    lambda lib, T_: lib.Dropout(1.5),
    lambda lib, T_: lib.GroupNorm(4, 6),
    lambda lib, T_: lib.MultiheadAttention(8, 3),
    lambda lib, T_: lib.Conv2d(3, 8, 3, groups=2),
    lambda lib, T_: lib.Conv2d(3, 8, 3, padding="same", stride=2),
    lambda lib, T_: lib.Embedding(5, 3, padding_idx=7),
], ids=["param_type", "buffer_exists", "buffer_type", "missing_attr", "train_mode", "sequential_index",
        "modulelist_index", "dropout_p", "groupnorm_groups", "mha_heads", "conv_groups", "conv_same_stride",
        "embedding_padding_idx"])
def test_module_errors_match_torch(action):
    raises_like_torch(lambda: action(nn, lt), lambda: action(TNN, torch))


# ---------------------------------------------------------------------------------------------
# traversal, repr, state dict

def test_traversal_order_matches_torch():
    lazy, ref = net(nn), net(TNN)
    for method in ("named_parameters", "named_buffers", "named_modules", "named_children"):
        assert [n for n, _ in getattr(lazy, method)()] == [n for n, _ in getattr(ref, method)()], method
    assert len(list(lazy.parameters())) == len(list(ref.parameters()))
    assert len(list(lazy.children())) == len(list(ref.children()))
    assert [type(m).__name__ for m in lazy.modules()] == [type(m).__name__ for m in ref.modules()]
    assert [n for n, _ in lazy.named_parameters(recurse=False)] == ["alpha"]


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]


@pytest.mark.parametrize("build", [small_cnn, mlp, net, lambda lib: lib.MultiheadAttention(8, 2)],
                         ids=["cnn", "mlp", "net", "mha"])
def test_state_dict_keys_and_repr_match_torch(build):
    lazy, ref = build(nn), build(TNN)
    assert list(lazy.state_dict()) == list(ref.state_dict())
    assert repr(lazy) == repr(ref)
    for key, value in ref.state_dict().items():
        assert tuple(lazy.state_dict()[key].shape) == tuple(value.shape)


LAYER_CONFIGS = [
    lambda lib: lib.Conv2d(3, 8, (3, 2), stride=2, padding=(1, 0), dilation=2, groups=1, bias=False,
                           padding_mode="reflect"),
    lambda lib: lib.Conv1d(4, 8, 3, padding="same", groups=2),
    lambda lib: lib.ConvTranspose2d(3, 6, 3, stride=2, output_padding=1, groups=3),
    lambda lib: lib.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda lib: lib.AvgPool2d((2, 3), stride=1),
    lambda lib: lib.AvgPool1d(3),
    lambda lib: lib.AdaptiveAvgPool2d((1, 1)),
    lambda lib: lib.BatchNorm1d(3, momentum=None, affine=False),
    lambda lib: lib.LayerNorm([4, 5], elementwise_affine=False),
    lambda lib: lib.GroupNorm(2, 4, eps=1e-3),
    lambda lib: lib.RMSNorm(4),
    lambda lib: lib.Embedding(10, 3, padding_idx=0, max_norm=1.0),
    lambda lib: lib.Bilinear(3, 4, 5),
    lambda lib: lib.Dropout(0.2, inplace=True),
    lambda lib: lib.Unflatten(1, (2, 3)),
    lambda lib: lib.Identity(),
    lambda lib: lib.ReLU(inplace=True),
    lambda lib: lib.LeakyReLU(0.1),
    lambda lib: lib.ELU(alpha=0.5, inplace=True),
    lambda lib: lib.GELU("tanh"),
    lambda lib: lib.Softplus(2, 10),
    lambda lib: lib.Hardtanh(-2.0, 2.0),
    lambda lib: lib.ReLU6(),
    lambda lib: lib.Softmax(dim=1),
    lambda lib: lib.LogSoftmax(-1),
    lambda lib: lib.SiLU(),
    lambda lib: lib.Mish(),
    lambda lib: lib.Sigmoid(),
    lambda lib: lib.Tanh(),
    lambda lib: lib.PReLU(3),
    lambda lib: lib.CrossEntropyLoss(label_smoothing=0.1),
    lambda lib: lib.Upsample(scale_factor=2, mode="bilinear"),
    lambda lib: lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 2), lib.ReLU(), lib.Linear(2, 2)]),
    lambda lib: lib.ModuleList(),
    lambda lib: lib.ModuleDict({"a": lib.ReLU(), "b": lib.Linear(2, 3)}),
]


@pytest.mark.parametrize("index", range(len(LAYER_CONFIGS)))
def test_layer_repr_matches_torch(index):
    build = LAYER_CONFIGS[index]
    assert repr(build(nn)) == repr(build(TNN))


def test_loss_weight_is_a_buffer_in_the_state_dict():
    w = np.abs(randn(5))
    lazy = nn.CrossEntropyLoss(weight=lt.tensor(w))
    ref = TNN.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(lazy.state_dict()) == list(ref.state_dict()) == ["weight"]
    lazy = nn.BCEWithLogitsLoss(pos_weight=lt.tensor(w))
    assert list(lazy.state_dict()) == ["pos_weight"]


def test_load_state_dict_errors_match_torch():
    good = {"weight": np.ones((2, 3), np.float32), "bias": np.ones(2, np.float32)}
    cases = [
        {"weight": good["weight"]},
        {"weight": np.ones((2, 4), np.float32), "bias": good["bias"], "foo": np.ones(1, np.float32)},
    ]
    for case in cases:
        raises_like_torch(lambda: nn.Linear(3, 2).load_state_dict({k: lt.tensor(v) for k, v in case.items()}),
                          lambda: TNN.Linear(3, 2).load_state_dict({k: torch.tensor(v) for k, v in case.items()}))
    result = nn.Linear(3, 2).load_state_dict({"weight": lt.tensor(good["weight"])}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == []
    assert repr(nn.Linear(3, 2).load_state_dict(good)) == "<All keys matched successfully>"


def test_load_state_dict_copies_values():
    src, dst = mlp(nn), mlp(nn)
    dst.load_state_dict(src.state_dict())
    for (name, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        assert a is not b
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with lt.no_grad():
        src[0].weight.mul_(2)
    assert not np.allclose(src[0].weight.detach().numpy(), dst[0].weight.detach().numpy())
    assigned = mlp(nn)
    assigned.load_state_dict(src.state_dict(), assign=True)
    assert isinstance(assigned[0].weight, nn.Parameter) and assigned[0].weight.requires_grad


def test_batchnorm_loads_a_checkpoint_without_num_batches_tracked():
    ref = TNN.BatchNorm2d(3)
    state = {k: v for k, v in ref.state_dict().items() if k != "num_batches_tracked"}
    lazy = nn.BatchNorm2d(3)
    assert lazy.load_state_dict(state).missing_keys == []


# ---------------------------------------------------------------------------------------------
# forward and backward against torch

def test_cnn_train_step_matches_torch():
    lazy, ref = paired(small_cnn)
    check_module(lazy, ref, IMG)
    for name, buf in ref.named_buffers():
        assert_close(dict(lazy.named_buffers())[name], buf)


def test_cnn_eval_matches_torch():
    lazy, ref = paired(small_cnn)
    lazy.eval(), ref.eval()
    check_module(lazy, ref, IMG)


def two_layer(lib):
    return lib.Sequential(lib.Linear(5, 4), lib.ReLU(), lib.Linear(4, 3))


def test_sgd_steps_match_torch():
    lazy, ref = paired(two_layer)
    x, y = randn(4, 5), randn(4, 3)
    for _ in range(2):
        for model, lib, tensors in ((lazy, nn, lt), (ref, TNN, torch)):
            model.zero_grad()
            loss = lib.functional.mse_loss(model(tensors.tensor(x)), tensors.tensor(y))
            loss.backward()
            with tensors.no_grad():
                for p in model.parameters():
                    p.sub_(p.grad * 0.1)
    for (name, a), (_, b) in zip(lazy.named_parameters(), ref.named_parameters()):
        assert_close(a.detach(), b.detach(), reduction=True)


MODULE_CASES = {
    "linear": (lambda lib: lib.Linear(5, 4), [X]),
    "linear_no_bias_3d": (lambda lib: lib.Linear(5, 4, bias=False), [randn(2, 3, 5)]),
    "conv2d": (lambda lib: lib.Conv2d(3, 4, 3, padding=1), [IMG]),
    "conv2d_reflect": (lambda lib: lib.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), [IMG]),
    "conv2d_groups_same": (lambda lib: lib.Conv2d(4, 6, 3, padding="same", groups=2), [randn(2, 4, 5, 5)]),
    "conv1d": (lambda lib: lib.Conv1d(3, 4, 3, stride=2, padding=1), [randn(2, 3, 9)]),
    "conv_transpose2d": (lambda lib: lib.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1),
                         [randn(2, 3, 4, 4)]),
    "maxpool2d": (lambda lib: lib.MaxPool2d(3, 2, 1), [IMG]),
    "avgpool2d": (lambda lib: lib.AvgPool2d(3, 2, 1), [IMG]),
    "adaptive_avgpool2d": (lambda lib: lib.AdaptiveAvgPool2d(3), [IMG]),
    "batchnorm1d": (lambda lib: lib.BatchNorm1d(5), [X]),
    "batchnorm2d": (lambda lib: lib.BatchNorm2d(3), [randn(4, 3, 2, 2)]),
    "layernorm": (lambda lib: lib.LayerNorm((2, 2)), [randn(4, 3, 2, 2)]),
    "groupnorm": (lambda lib: lib.GroupNorm(3, 6), [randn(2, 6, 5)]),
    "embedding": (lambda lib: lib.Embedding(6, 3, padding_idx=1), [np.array([[0, 2, 1], [1, 5, 1]], np.int64)]),
    "flatten": (lambda lib: lib.Flatten(0, 1), [X]),
    "unflatten": (lambda lib: lib.Unflatten(1, (5, 1)), [X]),
    "identity": (lambda lib: lib.Identity(3, key=4), [X]),
    "prelu": (lambda lib: lib.PReLU(3), [randn(2, 3, 4)]),
    "gelu": (lambda lib: lib.GELU(), [X]),
    "softmax": (lambda lib: lib.Softmax(-1), [X]),
}


@pytest.mark.parametrize("case", sorted(MODULE_CASES))
def test_layer_matches_torch(case):
    build, inputs = MODULE_CASES[case]
    lazy, ref = paired(build)
    check_module(lazy, ref, *inputs)


def test_bilinear_module():
    lazy, ref = paired(lambda lib: lib.Bilinear(4, 2, 5))
    check_module(lazy, ref, randn(3, 4), randn(3, 2))


def test_conv_transpose2d_output_size():
    lazy, ref = paired(lambda lib: lib.ConvTranspose2d(3, 6, 3, stride=2, padding=1))
    got = lazy(lt.tensor(randn(2, 3, 4, 4)), output_size=[8, 8])
    assert tuple(got.shape) == tuple(ref(torch.randn(2, 3, 4, 4), output_size=[8, 8]).shape) == (2, 6, 8, 8)
    raises_like_torch(lambda: lazy(lt.randn(2, 3, 4, 4), output_size=[10, 10]),
                      lambda: ref(torch.randn(2, 3, 4, 4), output_size=[10, 10]))


def test_embedding_padding_row_gets_no_gradient_and_from_pretrained():
    emb = nn.Embedding(6, 3, padding_idx=1)
    assert emb.weight[1].tolist() == [0.0, 0.0, 0.0]
    emb(lt.tensor([[1, 2], [1, 1]])).sum().backward()
    assert emb.weight.grad[1].tolist() == [0.0, 0.0, 0.0] and emb.weight.grad[2].tolist() == [1.0] * 3
    table = lt.tensor(randn(4, 2))
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(lt.tensor([3])).numpy(), table.numpy()[[3]])


@pytest.mark.parametrize("name,kwargs,target", [
    ("CrossEntropyLoss", dict(label_smoothing=0.2), LABELS),
    ("NLLLoss", dict(ignore_index=0), LABELS),
    ("MSELoss", dict(reduction="sum"), randn(4, 5)),
    ("L1Loss", dict(), randn(4, 5)),
    ("SmoothL1Loss", dict(beta=0.5), randn(4, 5)),
    ("HuberLoss", dict(delta=0.7), randn(4, 5)),
    ("BCEWithLogitsLoss", dict(), np.random.default_rng(3).random((4, 5)).astype(np.float32)),
    ("KLDivLoss", dict(reduction="batchmean", log_target=True), randn(4, 5)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_loss_modules(name, kwargs, target):
    lazy, ref = getattr(nn, name)(**kwargs), getattr(TNN, name)(**kwargs)
    assert repr(lazy) == repr(ref)
    got = lazy(lt.tensor(LOGITS), lt.tensor(target))
    assert_close(got, ref(torch.tensor(LOGITS), torch.tensor(target)), reduction=True, rtol=1e-4, atol=1e-5)


def test_weighted_loss_modules():
    w = np.abs(randn(5)) + 0.5
    got = nn.CrossEntropyLoss(weight=lt.tensor(w))(lt.tensor(LOGITS), lt.tensor(LABELS))
    want = TNN.CrossEntropyLoss(weight=torch.tensor(w))(torch.tensor(LOGITS), torch.tensor(LABELS))
    assert_close(got, want, reduction=True, rtol=1e-4, atol=1e-5)
    probs = 1 / (1 + np.exp(-LOGITS))
    got = nn.BCELoss(weight=lt.tensor(w), reduction="sum")(lt.tensor(probs), lt.tensor(probs[::-1].copy()))
    want = TNN.BCELoss(weight=torch.tensor(w), reduction="sum")(torch.tensor(probs), torch.tensor(probs[::-1].copy()))
    assert_close(got, want, reduction=True, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# training-mode state: BatchNorm, Dropout

@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_stats_then_eval(momentum):
    lazy, ref = paired(lambda lib: lib.BatchNorm2d(3, momentum=momentum))
    for step in range(3):
        x = randn(4, 3, 2, 2, scale=step + 1.0)
        assert_close(lazy(lt.tensor(x)), ref(torch.tensor(x)), reduction=True, rtol=1e-4, atol=1e-5)
    for name, buf in ref.named_buffers():
        assert_close(dict(lazy.named_buffers())[name], buf, reduction=True, rtol=1e-4, atol=1e-5)
    assert lazy.num_batches_tracked.item() == 3
    lazy.eval(), ref.eval()
    x = randn(4, 3, 2, 2)
    assert_close(lazy(lt.tensor(x)), ref(torch.tensor(x)), reduction=True, rtol=1e-4, atol=1e-5)
    assert lazy.num_batches_tracked.item() == 3


def test_batchnorm_without_running_stats_and_input_checks():
    lazy, ref = paired(lambda lib: lib.BatchNorm1d(5, track_running_stats=False))
    lazy.eval(), ref.eval()
    assert lazy.running_mean is None and list(lazy.state_dict()) == ["weight", "bias"]
    assert_close(lazy(lt.tensor(X)), ref(torch.tensor(X)), reduction=True, rtol=1e-4, atol=1e-5)
    raises_like_torch(lambda: nn.BatchNorm2d(3)(lt.rand(3, 4, 4)), lambda: TNN.BatchNorm2d(3)(torch.rand(3, 4, 4)))
    raises_like_torch(lambda: nn.BatchNorm1d(3)(lt.rand(3, 4, 4, 4)),
                      lambda: TNN.BatchNorm1d(3)(torch.rand(3, 4, 4, 4)))
    raises_like_torch(lambda: nn.BatchNorm1d(3)(lt.rand(1, 3)), lambda: TNN.BatchNorm1d(3)(torch.rand(1, 3)))


def test_dropout_module_train_vs_eval():
    lt.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = lt.ones(2000)
    y = drop(x).numpy()
    assert 0.45 < (y == 0).mean() < 0.55 and set(np.unique(y)) == {0.0, 2.0}
    drop.eval()
    assert drop(x) is x
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.9))
    model.eval()
    assert not model[1].training
    out = model(lt.ones(2, 3))
    assert np.count_nonzero(out.detach().numpy()) == 6


# ---------------------------------------------------------------------------------------------
# MultiheadAttention

MHA_CASES = {
    "plain": dict(),
    "bool_attn_mask": dict(attn_mask=np.random.default_rng(5).random((3, 4)) < 0.3),
    "padding_mask_no_weights": dict(key_padding_mask=np.array([[False, False, False, True], [False] * 4]),
                                    need_weights=False),
    "float_mask_per_head": dict(attn_mask=randn(3, 4), average_attn_weights=False),
    "causal": dict(attn_mask=~np.tril(np.ones((3, 4), np.bool_)), is_causal=True),
}


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("case,batch_first", [(case, False) for case in sorted(MHA_CASES)]
                         + [("plain", True), ("padding_mask_no_weights", True)])
def test_multihead_attention(case, batch_first):
    lazy, ref = paired(lambda lib: lib.MultiheadAttention(8, 2, batch_first=batch_first))
    q, k = randn(2, 3, 8), randn(2, 4, 8)
    if not batch_first:
        q, k = q.transpose(1, 0, 2).copy(), k.transpose(1, 0, 2).copy()
    kwargs = MHA_CASES[case]
    lazy_kw = {n: lt.tensor(v) if isinstance(v, np.ndarray) else v for n, v in kwargs.items()}
    torch_kw = {n: torch.tensor(v) if isinstance(v, np.ndarray) else v for n, v in kwargs.items()}
    out, weights = lazy(lt.tensor(q), lt.tensor(k), lt.tensor(k), **lazy_kw)
    ref_out, ref_weights = ref(torch.tensor(q), torch.tensor(k), torch.tensor(k), **torch_kw)
    (out * out).sum().backward()
    (ref_out * ref_out).sum().backward()
    assert_close(out, ref_out.detach(), reduction=True, rtol=1e-4, atol=1e-5)
    assert (weights is None) == (ref_weights is None)
    if weights is not None:
        assert_close(weights, ref_weights.detach(), reduction=True, rtol=1e-4, atol=1e-5)
    for (name, p), (_, tp) in zip(lazy.named_parameters(), ref.named_parameters()):
        assert_close(p.grad, tp.grad, reduction=True, rtol=1e-4, atol=1e-5)


def test_multihead_attention_variants():
    build = lambda lib: lib.MultiheadAttention(8, 2, kdim=6, vdim=5, add_bias_kv=True, add_zero_attn=True)  # noqa
    lazy, ref = paired(build)
    assert list(lazy.state_dict()) == list(ref.state_dict())
    q, k, v = randn(3, 2, 8), randn(4, 2, 6), randn(4, 2, 5)
    out, weights = lazy(lt.tensor(q), lt.tensor(k), lt.tensor(v))
    ref_out, ref_weights = ref(torch.tensor(q), torch.tensor(k), torch.tensor(v))
    assert_close(out, ref_out.detach(), reduction=True, rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_weights.detach(), reduction=True, rtol=1e-4, atol=1e-5)
    lazy, ref = paired(lambda lib: lib.MultiheadAttention(8, 2))
    out, weights = lazy(lt.tensor(q[:, 0]), lt.tensor(q[:, 0]), lt.tensor(q[:, 0]))      # unbatched
    ref_out, ref_weights = ref(torch.tensor(q[:, 0]), torch.tensor(q[:, 0]), torch.tensor(q[:, 0]))
    assert_close(out, ref_out.detach(), reduction=True, rtol=1e-4, atol=1e-5)
    raises_like_torch(lambda: lazy(lt.tensor(q), lt.tensor(q), lt.tensor(q), is_causal=True),
                      lambda: ref(torch.tensor(q), torch.tensor(q), torch.tensor(q), is_causal=True))


# ---------------------------------------------------------------------------------------------
# Module utilities: hooks, apply, modes, grads, dtype

def test_forward_hooks():
    lin = nn.Linear(5, 4)
    seen = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = lin.register_forward_hook(lambda m, args, out: seen.append(out.shape) or out + 1)
    out = lin(lt.tensor(X))
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(lin.bias.detach().numpy() + 1, (3, 4)),
                               rtol=1e-6)
    assert seen == [lt.Size([3, 4])]
    pre.remove(), post.remove()
    np.testing.assert_allclose(lin(lt.tensor(X)).detach().numpy(),
                               X @ lin.weight.detach().numpy().T + lin.bias.detach().numpy(), rtol=1e-5)


def test_apply_train_eval_and_requires_grad():
    model = net(nn)
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Net" and visited[0] == "Conv2d"
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_zero_grad():
    lin = nn.Linear(5, 4)
    lin(lt.tensor(X)).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad.abs().sum().item() == 0
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_to_double_converts_floating_state_only():
    lazy, ref = paired(lambda lib: lib.Sequential(lib.Linear(5, 4), lib.BatchNorm1d(4)))
    assert lazy.double() is lazy
    ref.double()
    assert all(p.dtype is lt.float64 for p in lazy.parameters())
    assert lazy[1].running_mean.dtype is lt.float64 and lazy[1].num_batches_tracked.dtype is lt.int64
    check_module(lazy, ref, X.astype(np.float64), rtol=1e-9, atol=1e-11)
    lazy.float()
    assert lazy[0].weight.dtype is lt.float32 and lazy[0].weight.grad.dtype is lt.float32
    lazy.to(lt.float64)
    assert lazy[1].bias.dtype is lt.float64
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point"):
        lazy.to(lt.int64)


def test_deepcopy_and_pickle_a_module():
    model = mlp(nn)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert repr(clone) == repr(model)
        for (_, a), (_, b) in zip(model.named_parameters(), clone.named_parameters()):
            assert a is not b and isinstance(b, nn.Parameter)
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# ---------------------------------------------------------------------------------------------
# containers

def test_sequential_container():
    layers = [nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    seq.append(nn.Tanh())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    seq.insert(1, nn.Identity())
    assert isinstance(seq[1], nn.Identity) and list(seq._modules) == ["0", "1", "2", "3", "4"]
    del seq[1]
    assert list(seq) == layers + [seq[3]]
    seq[3] = nn.Sigmoid()
    assert isinstance(seq[3], nn.Sigmoid)
    w0, b0, w2, b2 = (t.detach().numpy() for t in (layers[0].weight, layers[0].bias, layers[2].weight,
                                                   layers[2].bias))
    expected = 1 / (1 + np.exp(-(np.maximum(X @ w0.T + b0, 0) @ w2.T + b2)))
    np.testing.assert_allclose(seq(lt.tensor(X)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named._modules) == ["fc", "act"] and isinstance(named.fc, nn.Linear)


def test_modulelist_and_moduledict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    layers.extend([nn.Tanh()])
    layers.insert(0, nn.Identity())
    assert len(layers) == 6 and isinstance(layers[0], nn.Identity) and isinstance(layers[-1], nn.Tanh)
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert isinstance(layers[0], nn.Linear) and list(layers._modules) == [str(i) for i in range(5)]
    assert len(list(layers.parameters())) == 6
    table = nn.ModuleDict({"a": nn.Linear(2, 2)})
    table["b"] = nn.ReLU()
    table.update([("c", nn.Tanh())])
    assert list(table.keys()) == ["a", "b", "c"] and "b" in table and len(table) == 3
    assert isinstance(table.pop("b"), nn.ReLU) and list(table) == ["a", "c"]
    params = nn.ParameterList([nn.Parameter(lt.zeros(2)), lt.ones(3)])
    assert len(list(params.parameters())) == 2 and isinstance(params[1], nn.Parameter)
    assert repr(params) == repr(TNN.ParameterList([TNN.Parameter(torch.zeros(2)), torch.ones(3)]))


# ---------------------------------------------------------------------------------------------
# initialization

def test_calculate_gain_matches_torch():
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.3),
                 ("selu",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(TNN.init.calculate_gain(*args))
    raises_like_torch(lambda: nn.init.calculate_gain("foo"), lambda: TNN.init.calculate_gain("foo"))
    raises_like_torch(lambda: nn.init.xavier_uniform_(lt.zeros(3)), lambda: TNN.init.xavier_uniform_(torch.zeros(3)))


def test_default_initialization_bounds():
    for layer, fan_in in ((nn.Linear(50, 40), 50), (nn.Conv2d(6, 8, 3), 54)):
        bound = 1 / math.sqrt(fan_in)
        w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        assert np.abs(b).max() <= bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
    bn = nn.BatchNorm2d(3)
    assert bn.weight.tolist() == [1.0] * 3 and bn.bias.tolist() == [0.0] * 3
    mha = nn.MultiheadAttention(8, 2)
    assert mha.in_proj_bias.abs().sum().item() == 0 and mha.out_proj.bias.abs().sum().item() == 0


def test_initializers():
    init = nn.init
    w = nn.Parameter(lt.empty(200, 300))
    assert init.xavier_uniform_(w, gain=2.0) is w
    bound = 2.0 * math.sqrt(6.0 / 500)
    values = w.detach().numpy()
    assert np.abs(values).max() <= bound and abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound
    init.xavier_normal_(w)
    assert abs(w.detach().numpy().std() - math.sqrt(2.0 / 500)) < 0.03 * math.sqrt(2.0 / 500)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.detach().numpy().std() - math.sqrt(2.0 / 200)) < 0.03 * math.sqrt(2.0 / 200)
    init.kaiming_uniform_(w, a=0.5)
    assert np.abs(w.detach().numpy()).max() <= math.sqrt(3) * init.calculate_gain("leaky_relu", 0.5) / math.sqrt(300)
    init.trunc_normal_(w, mean=1.0, std=2.0, a=-1.0, b=2.0)
    values = w.detach().numpy()
    assert values.min() >= -1.0 and values.max() <= 2.0 and values.std() > 0.5
    init.normal_(w, 3.0, 0.5)
    assert abs(w.detach().numpy().mean() - 3.0) < 0.01
    init.uniform_(w, -0.5, 0.25)
    assert w.detach().numpy().min() >= -0.5 and w.detach().numpy().max() <= 0.25
    init.constant_(w, 0.3)
    assert (w.detach().numpy() == np.float32(0.3)).all() and w.requires_grad and w.is_leaf
    init.zeros_(w), init.ones_(w)
    assert (w.detach().numpy() == 1).all()
    init.eye_(w)
    np.testing.assert_array_equal(w.detach().numpy(), np.eye(200, 300))
    square = lt.empty(6, 4)
    init.orthogonal_(square)
    np.testing.assert_allclose(square.numpy().T @ square.numpy(), np.eye(4), atol=1e-5)
    kernel = lt.empty(4, 4, 3, 3)
    init.dirac_(kernel)
    assert_close(kernel, TNN.init.dirac_(torch.empty(4, 4, 3, 3)))


def test_initializers_follow_lazytorch_seed():
    lt.manual_seed(11)
    a = nn.Linear(4, 3).weight.detach().numpy().copy()
    lt.manual_seed(11)
    np.testing.assert_array_equal(nn.Linear(4, 3).weight.detach().numpy(), a)


# ---------------------------------------------------------------------------------------------
# gradient clipping

def _paired_grads(scale=1.0):
    lazy, ref = paired(two_layer)
    x = randn(4, 5, scale=scale)
    (lazy(lt.tensor(x)) ** 2).sum().backward()
    (ref(torch.tensor(x)) ** 2).sum().backward()
    return lazy, ref


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm(norm_type):
    lazy, ref = _paired_grads(scale=3.0)
    got = nn.utils.clip_grad_norm_(lazy.parameters(), 0.5, norm_type)
    want = TNN.utils.clip_grad_norm_(ref.parameters(), 0.5, norm_type)
    assert_close(got, want, reduction=True, rtol=1e-4, atol=1e-5)
    for a, b in zip(lazy.parameters(), ref.parameters()):
        assert_close(a.grad, b.grad, reduction=True, rtol=1e-4, atol=1e-6)


def test_clip_grad_norm_nonfinite_and_empty():
    p = nn.Parameter(lt.ones(2))
    p.grad = lt.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is "
                                           "non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([nn.Parameter(lt.ones(2))], 1.0).item() == 0.0


def test_clip_grad_value():
    lazy, ref = _paired_grads(scale=3.0)
    nn.utils.clip_grad_value_(lazy.parameters(), 0.1)
    TNN.utils.clip_grad_value_(ref.parameters(), 0.1)
    for a, b in zip(lazy.parameters(), ref.parameters()):
        assert_close(a.grad, b.grad, reduction=True, rtol=1e-4, atol=1e-6)


def test_parameters_to_vector_roundtrip():
    model = two_layer(nn)
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (sum(p.numel() for p in model.parameters()),)
    nn.utils.vector_to_parameters(vec * 0 + 1, model.parameters())
    assert all((p.detach().numpy() == 1).all() for p in model.parameters())
