"""Higher-order gradients against torch: `create_graph=True` (second and third derivatives,
gradient penalties, Hessian-vector products), `lazytorch.func` (grad, grad_and_value, vjp,
jacrev, hessian, nested) and `lazytorch.autograd.functional`.

Everything is float64 so that comparisons are tight; shapes are few and small.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.autograd.functional  # noqa: E402
import torch.func  # noqa: E402

import lazytorch as lt  # noqa: E402
from conftest import assert_close, make_array  # noqa: E402


def both(array, requires_grad=True):
    return (lt.tensor(array.copy(), requires_grad=requires_grad),
            torch.tensor(array.copy(), requires_grad=requires_grad))


X = make_array((2, 3), "float64", seed=1)


# ---------------------------------------------------------------------------------------------
# create_graph=True

@pytest.mark.parametrize("f", [
    lambda m, x: (x ** 3).sum(), lambda m, x: (x.sin() * x.exp()).sum(), lambda m, x: x.tanh().sum(),
    lambda m, x: x.sigmoid().prod(), lambda m, x: x.softmax(1)[:, 0].sum(), lambda m, x: x.logsumexp(1).sum(),
    lambda m, x: (x @ x.t()).sum(), lambda m, x: x.norm(), lambda m, x: (x / (1 + x * x)).var(),
], ids=["cube", "sin_exp", "tanh", "sigmoid_prod", "softmax", "logsumexp", "gram", "norm", "ratio_var"])
def test_second_derivative(f):
    x, tx = both(X)
    (g,) = lt.autograd.grad(f(lt, x), x, create_graph=True)
    (tg,) = torch.autograd.grad(f(torch, tx), tx, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None and not g.is_leaf
    assert_close(g, tg, reduction=True)
    # the second derivative contracted with a fixed direction, and its full diagonal via backward
    w = make_array((2, 3), "float64", seed=2)
    (h,) = lt.autograd.grad((g * lt.tensor(w)).sum(), x)
    (th,) = torch.autograd.grad((tg * torch.tensor(w)).sum(), tx)
    assert_close(h, th, reduction=True)


def test_third_derivative():
    x, tx = both(np.array([0.3, -1.2, 2.0]))
    grads = []
    for lib, t in ((lt, x), (torch, tx)):
        y = (t.sin() * t ** 2).sum()
        (g1,) = lib.autograd.grad(y, t, create_graph=True)
        (g2,) = lib.autograd.grad(g1.sum(), t, create_graph=True)
        (g3,) = lib.autograd.grad(g2.sum(), t)
        grads.append((g1, g2, g3))
    for a, b in zip(*grads):
        assert_close(a, b, reduction=True)


def test_backward_create_graph_then_backward_of_the_gradient():
    x, tx = both(np.array([0.5, -1.0, 2.0]))
    for lib, t in ((lt, x), (torch, tx)):
        (t ** 3).sum().backward(create_graph=True)
        assert t.grad.requires_grad and t.grad.grad_fn is not None
        first = t.grad
        t.grad = None
        first.sum().backward()              # d/dx sum(3x^2) = 6x
    assert_close(x.grad, tx.grad)


def test_gradient_of_a_linear_function_does_not_require_grad():
    # torch: with create_graph the gradient requires grad only if it depends on something that does
    x, tx = both(np.array([1.0, 2.0]))
    (g,) = lt.autograd.grad((x * 3).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((tx * 3).sum(), tx, create_graph=True)
    assert g.requires_grad == tg.requires_grad == False  # noqa: E712
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        lt.autograd.grad(g.sum(), x)
    # but a differentiable grad_output makes it differentiable again
    v, tv = both(np.array([0.5, -0.5]))
    (g,) = lt.autograd.grad(x * 3, x, v, create_graph=True)
    (tg,) = torch.autograd.grad(tx * 3, tx, tv, create_graph=True)
    assert g.requires_grad and tg.requires_grad
    (gv,) = lt.autograd.grad(g.sum(), v)
    (tgv,) = torch.autograd.grad(tg.sum(), tv)
    assert_close(gv, tgv)


def _mlp(lib, x, w1, b1, w2):
    return (lib.tanh(x @ w1 + b1) @ w2).squeeze(-1)


def test_gradient_penalty_backward_to_parameters():
    # WGAN-GP: penalty = mean((|d critic / d x|_2 - 1)^2), differentiated w.r.t. the critic's weights
    arrays = [make_array((4, 3), "float64", seed=3), make_array((3, 5), "float64", seed=4),
              make_array((5,), "float64", seed=5), make_array((5, 1), "float64", seed=6)]
    results = []
    for lib in (lt, torch):
        x = lib.tensor(arrays[0], requires_grad=True)
        params = [lib.tensor(a, requires_grad=True) for a in arrays[1:]]
        critic = _mlp(lib, x, *params)
        (gx,) = lib.autograd.grad(critic.sum(), x, create_graph=True)
        penalty = ((gx.norm(2, dim=1) - 1) ** 2).mean()
        loss = critic.mean() + 10 * penalty
        loss.backward()
        results.append([loss.detach(), x.grad] + [p.grad for p in params])
    for a, b in zip(*results):
        assert_close(a, b, reduction=True)


def test_hessian_vector_product():
    arrays = [make_array((3, 5), "float64", seed=7), make_array((5,), "float64", seed=8)]
    v_arrays = [make_array((3, 5), "float64", seed=9), make_array((5,), "float64", seed=10)]
    x = make_array((4, 3), "float64", seed=11)
    results = []
    for lib in (lt, torch):
        params = [lib.tensor(a, requires_grad=True) for a in arrays]
        vs = [lib.tensor(a) for a in v_arrays]
        loss = (lib.tanh(lib.tensor(x) @ params[0] + params[1]) ** 2).mean()
        grads = lib.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        results.append(lib.autograd.grad(dot, params))
    for a, b in zip(*results):
        assert_close(a, b, reduction=True)


def test_double_backward_through_relu_and_max_is_zero_where_piecewise_linear():
    x, tx = both(np.array([[-1.0, 0.5, 2.0], [1.5, -0.5, 0.25]]))
    results = []
    for lib, t in ((lt, x), (torch, tx)):
        y = (t.relu() * t).sum() + t.amax(1).sum() + t.clamp(-0.6, 1.0).pow(2).sum()
        (g,) = lib.autograd.grad(y, t, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), t)
        results.append((g, h))
    for a, b in zip(*results):
        assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# lazytorch.func

def test_func_grad_and_nested_grad():
    x, tx = both(np.array([0.3, -0.7, 1.1]), requires_grad=False)

    def f(lib):
        return lambda a: (a.sin() * a ** 2).sum()

    assert_close(lt.func.grad(f(lt))(x), torch.func.grad(f(torch))(tx))
    second = lt.func.grad(lambda a: lt.func.grad(f(lt))(a).sum())(x)
    tsecond = torch.func.grad(lambda a: torch.func.grad(f(torch))(a).sum())(tx)
    assert_close(second, tsecond)
    assert not second.requires_grad
    assert lt.func.grad is not lt.autograd.grad


def test_func_grad_argnums_has_aux_and_grad_and_value():
    a, ta = both(make_array((3,), "float64", seed=12), requires_grad=False)
    b, tb = both(make_array((3,), "float64", seed=13), requires_grad=False)

    def f(x, y, scale):
        return (x * y.exp()).sum() * scale, x * 2

    got = lt.func.grad(f, argnums=(0, 1), has_aux=True)(a, b, 3.0)
    want = torch.func.grad(f, argnums=(0, 1), has_aux=True)(ta, tb, 3.0)
    for g, tg in zip(got[0], want[0]):
        assert_close(g, tg)
    assert_close(got[1], want[1])
    (g, (value, aux)) = lt.func.grad_and_value(f, argnums=1, has_aux=True)(a, b, 3.0)
    (tg, (tvalue, taux)) = torch.func.grad_and_value(f, argnums=1, has_aux=True)(ta, tb, 3.0)
    assert_close(g, tg)
    assert_close(value, tvalue)
    assert not value.requires_grad and not aux.requires_grad
    g, value = lt.func.grad_and_value(lambda x: (x * x).sum())(a)
    assert_close(g, 2 * ta)


def test_func_grad_tells_arguments_apart_from_closures_and_each_other():
    x, tx = both(np.array([1.0, 2.0]), requires_grad=False)
    # a closure over the same tensor is a constant; the same tensor passed twice is two arguments
    assert_close(lt.func.grad(lambda a: (a * x).sum())(x), torch.func.grad(lambda a: (a * tx).sum())(tx))
    got = lt.func.grad(lambda a, b: (a * b * b).sum(), argnums=(0, 1))(x, x)
    want = torch.func.grad(lambda a, b: (a * b * b).sum(), argnums=(0, 1))(tx, tx)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    # unused: zeros
    assert lt.func.grad(lambda a, b: (b * 2).sum())(x, x).tolist() == [0.0, 0.0]


def test_func_grad_composes_with_backward():
    # inputs that require grad: the gradient is differentiable w.r.t. them (torch.func composes)
    x, tx = both(np.array([0.5, -1.5]))
    g = lt.func.grad(lambda a: (a ** 3).sum())(x)
    tg = torch.func.grad(lambda a: (a ** 3).sum())(tx)
    assert g.requires_grad and tg.requires_grad
    g.sum().backward()
    tg.sum().backward()
    assert_close(x.grad, tx.grad)
    with lt.no_grad():                          # torch.func.grad ignores an outer no_grad
        assert_close(lt.func.grad(lambda a: (a ** 3).sum())(x.detach()), 3 * tx.detach() ** 2)


def test_func_grad_pytrees_and_errors():
    params = {"w": lt.tensor([1.0, 2.0]), "b": [lt.tensor(0.5)]}
    g = lt.func.grad(lambda p, x: ((p["w"] * x).sum() + p["b"][0]) ** 2)(params, lt.tensor([3.0, 4.0]))
    assert set(g) == {"w", "b"} and isinstance(g["b"], list)
    assert g["w"].tolist() == [2 * 11.5 * 3, 2 * 11.5 * 4] and g["b"][0].item() == 2 * 11.5
    x = lt.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a scalar Tensor, got tensor with 1 "
                                           "dims"):
        lt.func.grad(lambda a: a * 2)(x)
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a Tensor"):
        lt.func.grad(lambda a: 3.0)(x)
    with pytest.raises(RuntimeError, match="should be a tuple: \\(output, aux\\) if has_aux is True"):
        lt.func.grad(lambda a: a.sum(), has_aux=True)(x)
    with pytest.raises(RuntimeError, match="floating point"):
        lt.func.grad(lambda a: a.sum())(lt.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="only 1 positional inputs"):
        lt.func.grad(lambda a: a.sum(), argnums=1)(x)


def test_func_vjp():
    x, tx = both(make_array((2, 3), "float64", seed=14), requires_grad=False)
    w, tw = both(make_array((3,), "float64", seed=15), requires_grad=False)
    ct, tct = both(make_array((2, 3), "float64", seed=16), requires_grad=False)
    out, fn = lt.func.vjp(lambda a, b: a.exp() * b, x, w)
    tout, tfn = torch.func.vjp(lambda a, b: a.exp() * b, tx, tw)
    assert_close(out, tout)
    assert not out.requires_grad
    for g, tg in zip(fn(ct), tfn(tct)):
        assert_close(g, tg, reduction=True)
    # several outputs, and aux
    out, fn, aux = lt.func.vjp(lambda a: ((a * 2, a.sin()), a.sum()), x, has_aux=True)
    tout, tfn, taux = torch.func.vjp(lambda a: ((a * 2, a.sin()), a.sum()), tx, has_aux=True)
    (g,) = fn((ct, ct))
    (tg,) = tfn((tct, tct))
    assert_close(g, tg)
    assert_close(aux, taux, reduction=True)


def test_func_jacrev_and_hessian():
    x, tx = both(np.array([0.4, -0.8, 1.3]), requires_grad=False)
    assert_close(lt.func.jacrev(lambda a: a.sin() * a.sum())(x), torch.func.jacrev(lambda a: a.sin() * a.sum())(tx))
    assert_close(lt.func.hessian(lambda a: (a.exp() * a.cos()).sum())(x),
                 torch.func.hessian(lambda a: (a.exp() * a.cos()).sum())(tx))
    y, ty = both(np.array([[1.0, 2.0]]), requires_grad=False)
    got = lt.func.jacrev(lambda a, b: (a[:2] * b).sum(0), argnums=(0, 1))(x, y)
    want = torch.func.jacrev(lambda a, b: (a[:2] * b).sum(0), argnums=(0, 1))(tx, ty)
    for g, tg in zip(got, want):
        assert_close(g, tg)
    # an argument the output does not depend on: zero blocks
    got = lt.func.jacrev(lambda a, b: a * 2, argnums=(0, 1))(x, y)
    want = torch.func.jacrev(lambda a, b: a * 2, argnums=(0, 1))(tx, ty)
    for g, tg in zip(got, want):
        assert_close(g, tg)


# ---------------------------------------------------------------------------------------------
# lazytorch.autograd.functional

def _f(lib):
    return lambda a, b: (a.exp() * b.sin()).sum(0)


def test_functional_jacobian_and_hessian():
    a, ta = both(make_array((2, 2), "float64", seed=17), requires_grad=False)
    b, tb = both(make_array((2,), "float64", seed=18), requires_grad=False)
    got = lt.autograd.functional.jacobian(_f(lt), (a, b))
    want = torch.autograd.functional.jacobian(_f(torch), (ta, tb))
    for g, tg in zip(got, want):
        assert_close(g, tg)
    single = lt.autograd.functional.jacobian(lambda t: t.tanh(), b)
    assert_close(single, torch.autograd.functional.jacobian(lambda t: t.tanh(), tb))
    scalar = lambda lib: lambda p, q: (p.exp() * q.sin()).sum()  # noqa: E731
    got = lt.autograd.functional.hessian(scalar(lt), (a, b))
    want = torch.autograd.functional.hessian(scalar(torch), (ta, tb))
    for row, trow in zip(got, want):
        for g, tg in zip(row, trow):
            assert_close(g, tg)
    assert_close(lt.autograd.functional.hessian(lambda t: (t ** 3).sum(), b),
                 torch.autograd.functional.hessian(lambda t: (t ** 3).sum(), tb))


def test_functional_vjp_jvp_hvp_vhp():
    a, ta = both(make_array((2, 2), "float64", seed=19), requires_grad=False)
    b, tb = both(make_array((2,), "float64", seed=20), requires_grad=False)
    u, tu = both(make_array((2,), "float64", seed=21), requires_grad=False)
    va, tva = both(make_array((2, 2), "float64", seed=22), requires_grad=False)
    pairs = [
        (lt.autograd.functional.vjp(_f(lt), (a, b), u), torch.autograd.functional.vjp(_f(torch), (ta, tb), tu)),
        (lt.autograd.functional.jvp(_f(lt), (a, b), (va, u)),
         torch.autograd.functional.jvp(_f(torch), (ta, tb), (tva, tu))),
    ]
    scalar = lambda lib: lambda p, q: (p.exp() * q.sin()).sum()  # noqa: E731
    for name in ("hvp", "vhp"):
        pairs.append((getattr(lt.autograd.functional, name)(scalar(lt), (a, b), (va, u)),
                      getattr(torch.autograd.functional, name)(scalar(torch), (ta, tb), (tva, tu))))
    for (out, products), (tout, tproducts) in pairs:
        assert_close(out, tout, reduction=True)
        for p, tp in zip(products if isinstance(products, tuple) else (products,),
                         tproducts if isinstance(tproducts, tuple) else (tproducts,)):
            assert not p.requires_grad
            assert_close(p, tp, reduction=True)
