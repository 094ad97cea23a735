"""The autograd front-end against torch.autograd: flags, leaves, .grad, grad modes, backward() and
autograd.grad() arguments and errors, in-place semantics, and gradient parity on composite
expressions (same numpy data in both libraries, compare .grad).

Shapes are few and small; most graphs here are float32, as users write them.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
from conftest import assert_close, make_array, pair  # noqa: E402


def grads_close(lazy_tensors, torch_tensors, **tol):
    for a, b in zip(lazy_tensors, torch_tensors):
        assert (a.grad is None) == (b.grad is None), (a.grad, b.grad)
        if b.grad is not None:
            assert_close(a.grad, b.grad, reduction=True, **tol)


# ---------------------------------------------------------------------------------------------
# requires_grad, leaves, grad_fn

def test_requires_grad_flag_in_every_form():
    assert lt.ones(2, requires_grad=True).requires_grad
    assert lt.tensor([1.0], requires_grad=True).requires_grad
    assert lt.randn(2, requires_grad=True).requires_grad
    assert lt.zeros_like(lt.ones(2), requires_grad=True).requires_grad
    x = lt.ones(2)
    assert not x.requires_grad
    x.requires_grad = True
    assert x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.requires_grad_(False) is x and not x.requires_grad
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        lt.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        lt.tensor([1, 2], requires_grad=True)


def test_leaves_and_non_leaves():
    x = lt.ones(2, requires_grad=True)
    y = x * 2
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    y.requires_grad_(True)                     # allowed on a non-leaf that requires grad (torch)
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)
    z = lt.ones(2) * 2                         # nothing requires grad: a leaf
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None
    i = (x * 2).long()                         # integer results never require grad
    assert not i.requires_grad
    assert not (x > 1).requires_grad


@pytest.mark.parametrize("make,name", [
    (lambda x: x * 2, "MulBackward0"), (lambda x: x + 1, "AddBackward0"), (lambda x: x - x, "SubBackward0"),
    (lambda x: x / 2, "DivBackward0"), (lambda x: x.exp(), "ExpBackward0"), (lambda x: x.sum(), "SumBackward0"),
    (lambda x: x.relu(), "ReluBackward0"), (lambda x: x.view(2, 2), "ViewBackward0"),
    (lambda x: x.reshape(2, 2) @ x.reshape(2, 2), "MmBackward0"), (lambda x: x.permute(0), "PermuteBackward0"),
    (lambda x: x.tanh(), "TanhBackward0"), (lambda x: x.sigmoid(), "SigmoidBackward0"),
])
def test_grad_fn_names_match_torch(make, name):
    x, tx = pair(np.ones(4, np.float32), requires_grad=True)
    assert make(tx).grad_fn.name() == name
    assert make(x).grad_fn.name() == name
    assert repr(make(x).grad_fn).startswith(f"<{name} object")


# ---------------------------------------------------------------------------------------------
# .grad: accumulation, retain_grad, repeated backward

def test_grad_accumulates_over_backward_calls_and_the_same_graph_twice():
    x, tx = pair(make_array((3,), seed=1), requires_grad=True)
    loss, tloss = (x * x).sum(), (tx * tx).sum()
    loss.backward()
    tloss.backward(retain_graph=True)
    held, theld = x.grad, tx.grad
    # the same graph again, without retain_graph: allowed here (torch would need retain_graph=True)
    loss.backward()
    tloss.backward()
    grads_close([x], [tx])
    assert_close(held, theld)                  # accumulation is in place, as in torch
    (x * 3).sum().backward(retain_graph=False)
    (tx * 3).sum().backward()
    grads_close([x], [tx])
    x.grad = None
    (x ** 3).sum().backward()
    assert_close(x.grad, 3 * tx.detach() ** 2)


def test_backward_through_the_same_graph_twice_gives_the_same_gradient_again():
    x = lt.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    first = x.grad.clone()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first.numpy(), rtol=1e-6)


def test_retain_grad_on_non_leaves():
    x, tx = pair(make_array((2, 3), seed=2), requires_grad=True)
    results = []
    for lib, leaf in ((lt, x), (torch, tx)):
        h = leaf * 2
        h.retain_grad()
        view = h[0]                        # a view of a retained tensor
        view.retain_grad()
        out = (h.sin() * 3).sum() + (view * view).sum()
        out.backward()
        assert h.retains_grad and not leaf.retains_grad
        results.append((h.grad, view.grad, leaf.grad))
    for a, b in zip(*results):
        assert_close(a, b, reduction=True)
    leaf = lt.ones(2, requires_grad=True)
    leaf.retain_grad()                     # a no-op on a leaf
    assert not leaf.retains_grad
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        lt.ones(2).retain_grad()
    y = leaf * 2
    (y * 1).sum().backward()
    assert y.grad is None                  # not retained


def test_retain_grad_on_a_no_op_view_of_a_leaf():
    # x[:] and x.view(x.shape) build no node: the view is told apart once it retains its grad
    x, tx = pair(make_array((2, 3), seed=3), requires_grad=True)
    grads = []
    for leaf in (x, tx):
        y = leaf[:]
        y.retain_grad()
        ((y * 2).sum() + (leaf * 3).sum()).backward()
        grads.append((y.grad, leaf.grad))
    assert_close(grads[0][0], grads[1][0])
    assert_close(grads[0][1], grads[1][1])


# ---------------------------------------------------------------------------------------------
# detach, and tensors that start requiring grad

def test_detach_and_detach_():
    x = lt.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert d.tolist() == [1.0, 2.0]
    (x * d).sum().backward()               # d is a constant
    assert x.grad.tolist() == [1.0, 2.0]
    y = x * 3
    assert y.detach_() is y
    assert not y.requires_grad and y.is_leaf and y.grad_fn is None
    assert y.tolist() == [3.0, 6.0]


def test_a_detached_copy_that_requires_grad_is_a_tensor_of_its_own():
    # x.detach() of a tensor that does not require grad, and clones, share a node with each other:
    # each of them that starts requiring grad must still get only its own gradient
    base = lt.tensor([1.0, 2.0, 3.0])
    a = base.detach().requires_grad_()
    b = base.clone().requires_grad_()
    c = base.clone().requires_grad_()
    lazy = (base * 100).sum() + (a * 2).sum() + (b * 3).sum() + (c * c).sum() + (base.clone() * 5).sum()
    lazy.backward()
    assert a.grad.tolist() == [2.0] * 3 and b.grad.tolist() == [3.0] * 3 and c.grad.tolist() == [2.0, 4.0, 6.0]
    computed = (lt.tensor([1.0, 2.0]) * 2).requires_grad_()     # a lazy value becomes a leaf
    (computed * (lt.tensor([1.0, 2.0]) * 2)).sum().backward()
    assert computed.grad.tolist() == [2.0, 4.0]


# ---------------------------------------------------------------------------------------------
# grad modes

def test_no_grad_enable_grad_nest():
    x = lt.ones(2, requires_grad=True)
    with lt.no_grad():
        assert not lt.is_grad_enabled()
        y = x * 2
        with lt.enable_grad():
            assert lt.is_grad_enabled()
            z = x * 2
        w = x * 2
    assert lt.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and not w.requires_grad
    assert z.requires_grad and not z.is_leaf
    (z.sum() + y.sum()).backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_grad_mode_decorators_with_and_without_parentheses():
    x = lt.ones(2, requires_grad=True)

    @lt.no_grad()
    def f1(t):
        return t * 2

    @lt.no_grad
    def f2(t):
        return t * 2

    @lt.inference_mode
    def f3(t):
        assert lt.autograd.is_inference_mode_enabled()
        return t * 2

    @lt.inference_mode()
    def f4(t):
        return t * 2

    @lt.enable_grad()
    def f5(t):
        return t * 2

    assert [f(x).requires_grad for f in (f1, f2, f3, f4)] == [False] * 4
    with lt.no_grad():
        assert f5(x).requires_grad
    assert f1.__name__ == "f1" and lt.is_grad_enabled() and not lt.autograd.is_inference_mode_enabled()


def test_set_grad_enabled_as_function_context_and_decorator():
    x = lt.ones(2, requires_grad=True)
    lt.set_grad_enabled(False)
    try:
        assert not lt.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        lt.set_grad_enabled(True)
    assert lt.is_grad_enabled()
    with lt.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with lt.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not lt.is_grad_enabled()
    assert lt.is_grad_enabled()

    @lt.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert lt.is_grad_enabled()            # decorating changes nothing by itself (torch)
    assert not f(x).requires_grad and lt.is_grad_enabled()


def test_inference_mode_false_and_exceptions_restore_the_mode():
    with lt.no_grad():
        with lt.inference_mode(False):
            assert not lt.is_grad_enabled()    # inference_mode(False) leaves grad mode alone (torch)
    with pytest.raises(ValueError):
        with lt.no_grad():
            raise ValueError
    assert lt.is_grad_enabled()

    @lt.no_grad()
    def generate():
        yield lt.is_grad_enabled()
        yield lt.is_grad_enabled()

    gen = generate()
    assert next(gen) is False
    assert lt.is_grad_enabled()                # the caller's code runs in its own mode
    assert next(gen) is False
    assert lt.autograd.grad_mode.no_grad is lt.no_grad


# ---------------------------------------------------------------------------------------------
# backward() arguments and errors

def test_backward_errors_match_torch():
    x, tx = pair(np.ones(3, np.float32), requires_grad=True)
    for a, b in ((lt.ones(2), torch.ones(2)), (lt.ones(()), torch.ones(()))):
        with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does not have a "
                                               "grad_fn"):
            a.backward()
        with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
            b.backward()
    for t in (x, tx):
        with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
            (t * 2).backward()
        with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of "
                                               r"torch.Size\(\[2\]\) and output\[0\] has a shape of "
                                               r"torch.Size\(\[3\]\)."):
            (t * 2).backward((lt if t is x else torch).ones(2))
        with pytest.raises(RuntimeError, match="`inputs` argument to `backward\\(\\)` cannot be empty."):
            (t * 2).sum().backward(inputs=[])


def test_backward_with_gradient_inputs_and_lists():
    x, tx = pair(make_array((2, 3), seed=4), requires_grad=True)
    w, tw = pair(make_array((3,), seed=5), requires_grad=True)
    g, tg = pair(make_array((2, 3), seed=6))
    (x * w).backward(g)
    (tx * tw).backward(tg)
    grads_close([x, w], [tx, tw])
    # float64 gradient for a float32 output is cast, as torch does
    (x * w).backward(g.double())
    (tx * tw).backward(tg.double())
    grads_close([x, w], [tx, tw])
    # only the given inputs accumulate
    x.grad = w.grad = tx.grad = tw.grad = None
    (x * w).sum().backward(inputs=[w])
    (tx * tw).sum().backward(inputs=[tw])
    grads_close([x, w], [tx, tw])
    (x * w).sum().backward(inputs=x)
    (tx * tw).sum().backward(inputs=tx)
    grads_close([x, w], [tx, tw])
    # torch.autograd.backward with several outputs and their gradients
    lt.autograd.backward([(x * w).sum(), x * 2], [None, g])
    torch.autograd.backward([(tx * tw).sum(), tx * 2], [None, tg])
    grads_close([x, w], [tx, tw])


def test_backward_of_a_leaf_and_of_a_non_float_path():
    x = lt.tensor(3.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0
    y = lt.tensor([1.0, -2.0], requires_grad=True)
    # argmax carries no gradient: only the float path counts
    (y * y.argmax().float()).sum().backward()
    assert y.grad.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------------
# autograd.grad

def test_grad_returns_without_accumulating():
    x, tx = pair(make_array((2, 3), seed=7), requires_grad=True)
    w, tw = pair(make_array((3,), seed=8), requires_grad=True)
    h, th = x * w, tx * tw                               # a non-leaf input
    out, tout = (h.exp() * w).sum(), (th.exp() * tw).sum()
    got = lt.autograd.grad(out, (x, w, h))
    want = torch.autograd.grad(tout, (tx, tw, th), retain_graph=True)
    for a, b in zip(got, want):
        assert not a.requires_grad
        assert_close(a, b, reduction=True)
    assert x.grad is None and w.grad is None
    (gx,) = lt.autograd.grad([out], [x], grad_outputs=[lt.tensor(2.0)])
    (tgx,) = torch.autograd.grad([tout], [tx], grad_outputs=[torch.tensor(2.0)])
    assert_close(gx, tgx, reduction=True)


def test_grad_unused_inputs_and_errors():
    x = lt.ones(2, requires_grad=True)
    unused = lt.ones(3, requires_grad=True)
    out = (x * 2).sum()
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors appears to not have been used in the "
                                           "graph. Set allow_unused=True if this is the desired behavior."):
        lt.autograd.grad(out, [x, unused])
    gx, gu = lt.autograd.grad(out, [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0, 2.0] and gu is None
    gx, gu = lt.autograd.grad(out, [x, unused], materialize_grads=True)
    assert lt.cat([gx, gu]).tolist() == [2.0, 2.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="Expected allow_unused to be True or not passed when materialize_grads"):
        lt.autograd.grad(out, [x], allow_unused=False, materialize_grads=True)
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require grad"):
        lt.autograd.grad(out, [lt.ones(2)])
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        lt.autograd.grad(lt.ones(()), [x])
    with pytest.raises(RuntimeError, match="`inputs` argument to `grad\\(\\)` cannot be empty."):
        lt.autograd.grad(out, [])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        lt.autograd.grad(x * 2, x)


def test_grad_of_an_output_with_respect_to_itself_and_duplicates():
    x = lt.tensor([1.0, 2.0], requires_grad=True)
    (g,) = lt.autograd.grad(x, x, lt.tensor([3.0, 4.0]))
    assert g.tolist() == [3.0, 4.0]
    a, b = lt.autograd.grad((x * x).sum(), [x, x])
    assert a.tolist() == b.tolist() == [2.0, 4.0]


def test_is_grads_batched():
    x, tx = pair(make_array((3,), seed=9), requires_grad=True)
    batch, tbatch = pair(make_array((2, 3), seed=10))
    (g,) = lt.autograd.grad(x.sin() * 2, x, batch, is_grads_batched=True)
    (tg,) = torch.autograd.grad(tx.sin() * 2, tx, tbatch, is_grads_batched=True)
    assert_close(g, tg)


# ---------------------------------------------------------------------------------------------
# in-place operations

def test_in_place_on_a_leaf_that_requires_grad():
    x, tx = pair(np.ones(3, np.float32), requires_grad=True)
    for t in (x, tx):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place "
                                               "operation."):
            t.add_(1)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place"):
            t[0] = 5.0
        with (lt if t is x else torch).no_grad():
            t.mul_(2)
            t[1] = 7.0
        assert t.is_leaf and t.requires_grad
    assert_close(x.detach(), tx.detach())


def test_in_place_ops_on_non_leaves_are_recorded():
    x, tx = pair(make_array((2, 3), seed=11), requires_grad=True)
    v, tv = pair(make_array((3,), seed=12), requires_grad=True)
    outs = []
    for a, b in ((x, v), (tx, tv)):
        y = a * 2
        y.add_(b)
        y.mul_(y.detach() + 1)
        y[0, 1:] = b[:2] * 3
        y[:, 0] *= 2
        outs.append(y)
        y.sin().sum().backward()
    assert_close(outs[0].detach(), outs[1].detach())
    grads_close([x, v], [tx, tv])
    assert outs[0].grad_fn is not None and not outs[0].is_leaf


def test_in_place_op_with_a_value_that_requires_grad_makes_a_non_leaf():
    w, tw = pair(make_array((3,), seed=13), requires_grad=True)
    acc, tacc = lt.zeros(3), torch.zeros(3)
    acc.add_(w * 2)
    tacc.add_(tw * 2)
    assert not acc.is_leaf and acc.requires_grad and acc.grad_fn is not None
    (acc * acc).sum().backward()
    (tacc * tacc).sum().backward()
    grads_close([w], [tw])


# ---------------------------------------------------------------------------------------------
# leaves updated in place keep their gradients (lazy values, realizations in between)

def test_item_before_backward_after_an_update_under_no_grad():
    # the update leaves w's value pending; loss.item() realizes it, which gives w a fresh buffer:
    # backward must still reach w through the node the graph was built on
    w = lt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = lt.tensor([1.0, 2.0, 3.0])
    for step in range(3):
        w.grad = None
        loss = (w * x).sum()
        assert loss.item() == pytest.approx(float(np.dot(w.detach().numpy(), [1, 2, 3])))
        loss.backward()
        assert w.grad.tolist() == [1.0, 2.0, 3.0]
        with lt.no_grad():
            w -= 0.1 * w.grad


def test_update_between_forward_and_backward():
    w, tw = pair(make_array((3,), seed=14), requires_grad=True)
    outs = []
    for t, lib in ((w, lt), (tw, torch)):
        loss = (t + 1).sum()                       # w is not saved for this backward (torch allows it)
        with lib.no_grad():
            t.mul_(3)
        loss2 = (t * t).sum()
        (loss + loss2).backward()
        outs.append(t.grad)
    assert_close(outs[0], outs[1])


# ---------------------------------------------------------------------------------------------
# parity on composite expressions

def _parity(build, *arrays, **tol):
    lazy = [lt.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = build(lt, *lazy), build(torch, *ref)
    assert_close(out, tout, reduction=True)
    out.backward()
    tout.backward()
    grads_close(lazy, ref, **tol)


def test_parity_mlp_loss():
    def mlp(lib, x, w1, b1, w2, b2):
        h = (x @ w1 + b1).relu()
        h = lib.tanh(h @ w2 + b2)
        return ((h - 0.5) ** 2).mean()
    _parity(mlp, make_array((4, 3)), make_array((3, 5), seed=1), make_array((5,), seed=2),
            make_array((5, 2), seed=3), make_array((2,), seed=4))


def test_parity_softmax_cross_entropy_by_hand():
    target = np.array([2, 0, 1, 2])

    def loss(lib, logits):
        probs = logits.softmax(1)
        logp = logits.log_softmax(1)
        picked = logp.gather(1, lib.tensor(target).reshape(-1, 1))
        return -picked.mean() + (probs * logp).sum(1).mean() * 0.1
    _parity(loss, make_array((4, 3), seed=5))


def test_parity_layer_norm_like():
    def layer_norm(lib, x, gamma, beta):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        y = (x - mu) / (var + 1e-5).sqrt() * gamma + beta
        return (y * lib.arange(6, dtype=lib.float32).reshape(2, 3)).sum()
    _parity(layer_norm, make_array((2, 3), seed=6), make_array((3,), seed=7), make_array((3,), seed=8))


def test_parity_indexing_gather_masked_fill():
    def f(lib, x, w):
        mask = lib.tensor([[True, False, True], [False, False, True]])
        idx = lib.tensor([1, 0, 1])
        a = x.masked_fill(mask, 0.0)[idx] * w
        b = x.gather(1, lib.tensor([[2, 2], [0, 1]])).sum()
        c = x[x.detach() > 0].sum() + x[:, lib.tensor([2, 0])].prod()
        return a.sum() + b + c + x.index_select(1, idx).pow(2).sum()
    _parity(f, make_array((2, 3), seed=9), make_array((3,), seed=10))


def test_parity_broadcasting_and_views():
    def f(lib, x, row, col):
        y = x.reshape(3, 2).t() * row + col            # (2, 3) * (3,) + (2, 1)
        z = y.unsqueeze(0).expand(2, 2, 3).permute(2, 0, 1).flip(0)[::2]
        return (z.exp() * lib.cat([y, y.flip(1)], 0).sum()).sum() + y.transpose(0, 1).reshape(-1)[1:4].sum()
    _parity(f, make_array((6,), seed=11), make_array((3,), seed=12), make_array((2, 1), seed=13))


def test_parity_where_relu_and_clamp_at_their_kinks():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0], np.float32)

    def f(lib, x):
        return (lib.where(x > 0.5, x * 2, x ** 2) + x.relu() + x.clamp(0.0, 1.0) + x.clamp(min=0.5)).sum()
    _parity(f, x)


def test_parity_max_dim_routes_to_the_index_it_returns():
    # ties: max(dim)/min(dim) send the whole gradient to the index they return (the first)
    x = np.array([[1.0, 5.0, 5.0, 2.0], [3.0, 3.0, 0.0, 3.0]], np.float32)

    def f(lib, x):
        values, indices = x.max(1)
        lows = x.min(0).values
        return (values * lib.tensor([1.0, 2.0])).sum() + lows.sum()
    _parity(f, x)
    lazy = lt.tensor(x).max(1).indices
    assert lazy.tolist() == torch.tensor(x).max(1).indices.tolist()


def test_parity_amax_and_full_max_split_ties_evenly():
    x = np.array([[1.0, 5.0, 5.0, 2.0], [3.0, 3.0, 0.0, 3.0]], np.float32)
    _parity(lambda lib, x: (x.amax(1) * lib.tensor([1.0, 2.0])).sum() + x.amin(0).sum(), x)
    _parity(lambda lib, x: x.max() + x.min(), x)
    _parity(lambda lib, x: lib.maximum(x, lib.tensor(3.0)).sum(), x)


# rows with no zero, one zero, two zeros and all but one zero; negative values
PROD_ROWS = np.array([[1.5, -2.0, 3.0, 0.5], [0.0, -2.0, 3.0, 0.5],
                      [0.0, -2.0, 0.0, 0.5], [0.0, 0.0, 0.0, -1.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("args", [(), (1,), (0, True), (-1, True)], ids=["all", "dim1", "dim0_keepdim", "dim-1_keepdim"])
def test_parity_prod_gradient_is_exact_where_the_input_has_zeros(dtype, args):
    """torch: with one zero in the slice, the zero gets the product of the others and the others
    0; with two or more, all 0 (never out / x = nan); second derivatives too."""
    x = PROD_ROWS.astype(dtype)
    weights = np.arange(1.0, 5.0).astype(dtype)           # distinct cotangents per slice
    _parity(lambda lib, x: (x.prod(*args) * lib.tensor(weights[:x.prod(*args).numel()])
                            .reshape(x.prod(*args).shape)).sum(), x, rtol=1e-6, atol=0)
    lazy, ref = lt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = lt.autograd.grad(lazy.prod(*args).sum(), lazy, create_graph=True)
    (tg,) = torch.autograd.grad(ref.prod(*args).sum(), ref, create_graph=True)
    (h,) = lt.autograd.grad((g * g).sum(), lazy)
    (th,) = torch.autograd.grad((tg * tg).sum(), ref)
    assert_close(h, th, reduction=True)


def test_prod_gradient_with_zeros_inside_jit():
    @lt.jit
    def prod_grad(x):
        return lt.autograd.grad(x.prod(1).sum() + x.prod(), x)[0]

    for seed, zeros in ((0, [(0, 1), (0, 3), (2, 0)]), (1, [(1, 2)]), (2, [])):
        a = make_array((4, 4), seed=seed, nonzero=True)
        for i, j in zeros:
            a[i, j] = 0
        ref = torch.tensor(a, requires_grad=True)
        (ref.prod(1).sum() + ref.prod()).backward()
        assert_close(prod_grad(lt.tensor(a, requires_grad=True)), ref.grad, reduction=True)
    assert len(prod_grad.specializations) == 1


def test_parity_float64_and_dtype_casts():
    def f(lib, x):
        return (x.float() * 2).sum() + x.sum()
    lazy = lt.tensor(make_array((3,), "float64", seed=14), requires_grad=True)
    ref = torch.tensor(make_array((3,), "float64", seed=14), requires_grad=True)
    f(lt, lazy).backward()
    f(torch, ref).backward()
    assert lazy.grad.dtype is lt.float64
    assert_close(lazy.grad, ref.grad)


# ---------------------------------------------------------------------------------------------
# one program: forward + backward fuse

def test_forward_and_backward_compile_into_few_kernels(counters):
    x = lt.tensor(make_array((4, 3), seed=15), requires_grad=True)
    w = lt.tensor(make_array((3, 5), seed=16), requires_grad=True)
    v = lt.tensor(make_array((4, 5), seed=17), requires_grad=True)
    loss = ((x @ w).relu() * v).sum()
    loss.backward()
    lt.realize(x.grad, w.grad, v.grad)       # nothing ran before: the counters hold this realization
    c = counters()
    # 3 BLAS calls: h = x @ w, x.grad = g_h @ w^T, w.grad = x^T @ g_h (the .grad tensors are these
    #               results themselves: no copy kernels).
    # 3 kernels:    g_h = where(h > 0, v, 0)  (the whole elementwise backward of relu * v, fused;
    #                   materialized because two matmuls read it),
    #               v.grad = relu(h)           (recomputed from h inside its own kernel),
    #               loss = sum(relu(h) * v)    (the forward value, realized with the gradients).
    assert c["library_calls"] == 3
    assert c["kernel_launches"] == 3
    tx, tw, tv = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w, v))
    ((tx @ tw).relu() * tv).sum().backward()
    grads_close([x, w, v], [tx, tw, tv])
    assert loss._node.realized is not None     # computed in the same program
