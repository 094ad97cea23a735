"""Reverse-mode automatic differentiation as an IR → IR transform.

`grad(outputs, cotangents, wrt)` returns, for every node in `wrt`, a new IR node computing the
vector-Jacobian product  d(sum_i <outputs[i], cotangents[i]>) / d(wrt). Nothing is computed here:
the gradient is ordinary lazy IR, so it is realized together with (and fused into) the forward
graph, and can itself be differentiated again for higher-order derivatives.

All calculus lives in one table, `VJP_RULES`: one small function per primitive, taking the forward
node and the cotangent of its output, and returning one cotangent (or None) per input. Rules only
build IR with the constructors of `compiler.ir.node` (never look at numpy values), which is what
makes the result differentiable again.

For inspection, every gradient node the transform creates records the forward node and the rule
that produced it (`GRAD_ORIGIN`, kept on the node itself, so it never keeps a graph alive);
`describe(node)` turns that into a sentence.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from compiler.ir.node import (
    Node, binary, cast, const, const_value, cumsum, expand, flip, gather, matmul, pad, permute,
    reduce, reshape, scatter_add, slice_, toposort, unary, where,
)
from compiler.ir.ops import Op

Grads = tuple[Optional[Node], ...]
Rule = Callable[[Node, Node], Grads]



class _Origins:
    """gradient node -> (forward node whose rule created it, rule name), read from `node.origin`.

    `_record` sets `node.origin = (forward node, rule name, input index)`; the index is that of the
    forward node's input the node is the whole gradient of (None for the intermediate nodes a rule
    builds on the way): it lets `describe` say "input 1"."""

    def get(self, node: Node, default=None) -> Optional[tuple[Node, str]]:
        return default if node.origin is None else node.origin[:2]

    def __getitem__(self, node: Node) -> tuple[Node, str]:
        if node.origin is None:
            raise KeyError(node)
        return node.origin[:2]

    def __contains__(self, node: Node) -> bool:
        return node.origin is not None


GRAD_ORIGIN = _Origins()

ACCUMULATE = "accumulate"   # rule name of the ADD that sums the cotangents of a node's users


# ---------------------------------------------------------------------------------------------
# small IR helpers: rules read like the math they implement

def full_like(node: Node, value: float) -> Node:
    """The constant `value` in `node`'s dtype, broadcast to its shape."""
    return const(value, node.dtype, node.shape, node.device)


def zeros_like(node: Node) -> Node:
    return full_like(node, 0.0)


def add(a: Node, b: Node) -> Node:
    return binary(Op.ADD, a, b)


def sub(a: Node, b: Node) -> Node:
    return binary(Op.SUB, a, b)


def mul(a: Node, b: Node) -> Node:
    return binary(Op.MUL, a, b)


def div(a: Node, b: Node) -> Node:
    return binary(Op.DIV, a, b)


def neg(a: Node) -> Node:
    return unary(Op.NEG, a)


def scaled(a: Node, factor: float) -> Node:
    """a * factor, the factor as a broadcast constant of a's dtype."""
    return mul(a, full_like(a, factor))


def shifted(a: Node, offset: float) -> Node:
    """a + offset, the offset as a broadcast constant of a's dtype."""
    return add(a, full_like(a, offset))


def as_mask(cond: Node, like: Node) -> Node:
    """A bool node as 0/1 in `like`'s dtype (so it can multiply a gradient)."""
    return cast(cond, like.dtype)


def unbroadcast_to(g: Node, shape: tuple[int, ...]) -> Node:
    """Sum `g` over the axes where `shape` has size 1 but `g` does not (inverse of expand)."""
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
    return reduce(Op.SUM, g, axes) if axes else g


def swap_last(x: Node) -> Node:
    """Transpose of the last two axes (a matrix or a batch of matrices)."""
    order = list(range(len(x.shape)))
    order[-1], order[-2] = order[-2], order[-1]
    return permute(x, tuple(order))


def const_scalar(node: Node) -> Optional[float]:
    """The value of a CONST node (a graph-building-time constant), None for any other node."""
    return const_value(node) if node.op is Op.CONST else None


def _is_float(node: Node) -> bool:
    return node.dtype.is_floating_point


# ---------------------------------------------------------------------------------------------
# rules: (forward node, cotangent of its output) -> one cotangent or None per input
#
# `node.inputs` are the forward inputs and `node` itself is the forward output: rules that need
# the output (exp, tanh, sqrt, ...) reuse it instead of recomputing it, which also keeps the
# gradient graph small. A None gradient means "zero" (not differentiable or constant).

def _vjp_leaf(node: Node, g: Node) -> Grads:
    return ()


def _vjp_none(node: Node, g: Node) -> Grads:
    """Not differentiable (bool/int results, comparisons, detach) or integer-valued steps."""
    return (None,) * len(node.inputs)


def _vjp_piecewise_constant(node: Node, g: Node) -> Grads:
    # sign, floor, ceil, round, trunc: derivative zero almost everywhere. A zero gradient, not
    # None, as in torch: `x.floor().sum().backward()` leaves x.grad zeros (None would leave it
    # None), and the zeros flow on through the rules below, so 0 * inf gives NaN there as in torch.
    return (zeros_like(node.inputs[0]),)


def _vjp_neg(node: Node, g: Node) -> Grads:
    return (neg(g),)


def _vjp_exp(node: Node, g: Node) -> Grads:
    return (mul(g, node),)                                  # d exp(x) = exp(x)


def _vjp_log(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (div(g, x),)


def _vjp_sin(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (mul(g, unary(Op.COS, x)),)


def _vjp_cos(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (mul(g, neg(unary(Op.SIN, x))),)


def _vjp_tan(node: Node, g: Node) -> Grads:
    return (mul(g, shifted(mul(node, node), 1.0)),)         # 1 + tan^2, as torch


def _vjp_sqrt(node: Node, g: Node) -> Grads:
    return (div(g, scaled(node, 2.0)),)                     # 1 / (2 sqrt(x))


def _vjp_abs(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (mul(g, unary(Op.SIGN, x)),)                     # sign(0) = 0, as torch


def _vjp_tanh(node: Node, g: Node) -> Grads:
    return (mul(g, sub(full_like(node, 1.0), mul(node, node))),)


def _vjp_sigmoid(node: Node, g: Node) -> Grads:
    return (mul(g, mul(node, sub(full_like(node, 1.0), node))),)


def _vjp_erf(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    gauss = unary(Op.EXP, neg(mul(x, x)))
    return (mul(g, scaled(gauss, 2.0 / math.sqrt(math.pi))),)


def _vjp_log1p(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (div(g, shifted(x, 1.0)),)


def _vjp_expm1(node: Node, g: Node) -> Grads:
    return (mul(g, shifted(node, 1.0)),)                    # exp(x) = expm1(x) + 1


def _vjp_cast(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    # the gradient lives in the input's dtype (float32 -> float64 -> back); none into ints/bools
    return (cast(g, x.dtype) if _is_float(x) else None,)


def _vjp_add(node: Node, g: Node) -> Grads:
    return (g, g)


def _vjp_sub(node: Node, g: Node) -> Grads:
    return (g, neg(g))


def _vjp_mul(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    return (mul(g, b), mul(g, a))


def _vjp_div(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    # d(a/b)/db = -a/b^2 = -(a/b)/b: reuse the output
    return (div(g, b), neg(div(mul(g, node), b)))


def _vjp_pow(node: Node, g: Node) -> Grads:
    return (_pow_grad_base(node, g), _pow_grad_exponent(node, g))


def _pow_grad_base(node: Node, g: Node) -> Optional[Node]:
    """d(a^b)/da = b a^(b-1), zero where b == 0 (so that 0 * 0^-1 = nan never appears; torch)."""
    a, b = node.inputs
    exponent = const_scalar(b)
    if exponent is not None:
        # x ** 3 and friends: the mask and the b - 1 fold away at graph-building time
        if exponent == 0:
            return zeros_like(a)        # torch: zeros (not None: x.grad must not stay None)
        return mul(g, scaled(binary(Op.POW, a, full_like(b, exponent - 1)), exponent))
    grad_a = mul(g, mul(b, binary(Op.POW, a, shifted(b, -1.0))))
    return where(binary(Op.EQ, b, zeros_like(b)), zeros_like(g), grad_a)


def _pow_grad_exponent(node: Node, g: Node) -> Node:
    """d(a^b)/db = a^b log(a), zero where a == 0 and b >= 0 (torch; log(0) would give nan)."""
    a, b = node.inputs
    grad_b = mul(g, mul(node, unary(Op.LOG, a)))
    base_zero = binary(Op.AND, binary(Op.EQ, a, zeros_like(a)), binary(Op.GE, b, zeros_like(b)))
    return where(base_zero, zeros_like(g), grad_b)


def _split_extremum(node: Node, g: Node, wins: Op) -> Grads:
    """maximum/minimum: the winner gets g, a tie gives g/2 to each side (as torch)."""
    a, b = node.inputs
    zero, half = zeros_like(g), scaled(g, 0.5)
    tie = binary(Op.EQ, a, b)
    grad_a = where(binary(wins, a, b), g, where(tie, half, zero))
    grad_b = where(binary(wins, b, a), g, where(tie, half, zero))
    return (grad_a, grad_b)


def _vjp_maximum(node: Node, g: Node) -> Grads:
    return _split_extremum(node, g, Op.GT)


def _vjp_minimum(node: Node, g: Node) -> Grads:
    return _split_extremum(node, g, Op.LT)


def _vjp_mod(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    # a mod b = a - b * floor(a / b), and floor is locally constant (torch.remainder's rule)
    return (g, neg(mul(g, unary(Op.FLOOR, div(a, b)))))


def _vjp_atan2(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    scale = div(g, add(mul(a, a), mul(b, b)))
    return (mul(scale, b), neg(mul(scale, a)))


def _vjp_replace(node: Node, g: Node) -> Grads:
    return g, None


def _vjp_where(node: Node, g: Node) -> Grads:
    cond, _, _ = node.inputs
    zero = zeros_like(g)
    return (None, where(cond, g, zero), where(cond, zero, g))


def _vjp_sum(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    return (expand(g, x.shape),)


def _vjp_prod(node: Node, g: Node) -> Grads:
    """d prod(x) / dx_i = the product of the other elements of x_i's slice, exact with zeros.

    out / x would be nan at a zero. With `others` the product of the slice's non-zero elements
    divided by x_i's own (1 for a zero), the gradient is `others` where no *other* element of the
    slice is zero (so the only zero gets the product of the rest), and 0 where one is. All of it is
    IR (counts by reductions, choices by where), so it runs lazily and inside jit.
    """
    (x,) = node.inputs
    axes, shape = node.arg, x.shape
    zero = binary(Op.EQ, x, zeros_like(x))
    nonzero = where(zero, full_like(x, 1.0), x)
    others = div(expand(reduce(Op.PROD, nonzero, axes), shape), nonzero)
    is_zero = as_mask(zero, x)
    other_zeros = sub(expand(reduce(Op.SUM, is_zero, axes), shape), is_zero)
    # With exactly one other zero x_k the gradient is 0 = x_k * others, but its derivative in x_k
    # is not (second order: d2 prod / dx_i dx_k = product of the rest). The sum of the other zeros
    # has value 0 and derivative 1 in each of them (the count is a constant to autodiff), so
    # multiplying by it keeps the Hessian exact; with two or more other zeros it is 0 as well.
    zero_values = where(zero, x, zeros_like(x))
    other_zero_sum = sub(expand(reduce(Op.SUM, zero_values, axes), shape), zero_values)
    factor = where(binary(Op.EQ, other_zeros, zeros_like(x)), full_like(x, 1.0),
                   where(binary(Op.EQ, other_zeros, full_like(x, 1.0)), other_zero_sum, zeros_like(x)))
    return (mul(expand(g, shape), mul(others, factor)),)


def _vjp_extremum_reduce(node: Node, g: Node) -> Grads:
    """max/min over axes: amax semantics, the gradient is shared evenly among tied extrema."""
    (x,) = node.inputs
    hits = as_mask(binary(Op.EQ, x, expand(node, x.shape)), x)
    count = reduce(Op.SUM, hits, node.arg)
    return (div(mul(expand(g, x.shape), hits), expand(count, x.shape)),)


def _vjp_reshape(node: Node, g: Node) -> Grads:
    return (reshape(g, node.inputs[0].shape),)


def _vjp_permute(node: Node, g: Node) -> Grads:
    inverse = [0] * len(node.arg)
    for i, axis in enumerate(node.arg):
        inverse[axis] = i
    n = len(inverse)
    if g.op is Op.MATMUL and tuple(inverse) == (*range(n - 2), n - 1, n - 2):
        # (a @ b)^T = b^T @ a^T: a weight used as `x @ w.T` (nn.Linear) gets its gradient from
        # one product in its own layout, instead of a product and a transposing copy
        a, b = g.inputs
        return (matmul(swap_last(b), swap_last(a)),)
    return (permute(g, tuple(inverse)),)


def _vjp_expand(node: Node, g: Node) -> Grads:
    return (unbroadcast_to(g, node.inputs[0].shape),)


def _vjp_pad(node: Node, g: Node) -> Grads:
    # slice off what padding added; a negative width cropped the input, so pad that back
    keep = tuple((max(before, 0), n - max(after, 0), 1)
                 for (before, after), n in zip(node.arg, node.shape))
    restore = tuple((max(-before, 0), max(-after, 0)) for before, after in node.arg)
    return (pad(slice_(g, keep), restore),)


def _unslice_axis(g: Node, axis: int, start: int, step: int, size: int) -> Node:
    """Place g (m entries along `axis`) at start, start+step, ... of a zero axis of `size`."""
    m = g.shape[axis]
    if step > 1 and m > 0:
        # interleave step-1 zeros after every entry: (.., m, ..) -> (.., m, 1, ..) -> pad to
        # (.., m, step, ..) -> (.., m*step, ..); entry k is now at k*step.
        before, after = g.shape[:axis], g.shape[axis + 1:]
        g = reshape(g, before + (m, 1) + after)
        widths = [(0, 0)] * len(g.shape)
        widths[axis + 1] = (0, step - 1)
        g = reshape(pad(g, tuple(widths)), before + (m * step,) + after)
        # the trailing zeros after the last entry may overshoot the input: drop what does
        keep = min(m * step, size - start)
        ranges = [(0, n, 1) for n in g.shape]
        ranges[axis] = (0, keep, 1)
        g = slice_(g, tuple(ranges))
    widths = [(0, 0)] * len(g.shape)
    widths[axis] = (start, size - start - g.shape[axis])
    return pad(g, tuple(widths))


def _vjp_slice(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    for axis, ((start, _, step), size) in enumerate(zip(node.arg, x.shape)):
        g = _unslice_axis(g, axis, start, step, size)
    return (g,)


def _vjp_flip(node: Node, g: Node) -> Grads:
    return (flip(g, node.arg),)


def _vjp_matmul(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    return (matmul(g, swap_last(b)), matmul(swap_last(a), g))


def _vjp_gather(node: Node, g: Node) -> Grads:
    source, index = node.inputs
    # every read of source[j] sends its cotangent back to j; repeated indices add up
    return (scatter_add(zeros_like(source), index, g, node.arg), None)


def _vjp_scatter_add(node: Node, g: Node) -> Grads:
    _, index, _ = node.inputs
    return (g, None, gather(g, index, node.arg))


def _vjp_cumsum(node: Node, g: Node) -> Grads:
    axis = (node.arg,)
    # out[j] = sum_{i<=j} x[i]  =>  dx[i] = sum_{j>=i} g[j]: a reversed cumulative sum
    return (flip(cumsum(flip(g, axis), node.arg), axis),)


VJP_RULES: dict[Op, Rule] = {
    Op.BUFFER: _vjp_leaf, Op.CONST: _vjp_leaf,
    # unary
    Op.NEG: _vjp_neg, Op.EXP: _vjp_exp, Op.LOG: _vjp_log, Op.SIN: _vjp_sin, Op.COS: _vjp_cos,
    Op.TAN: _vjp_tan, Op.SQRT: _vjp_sqrt, Op.ABS: _vjp_abs,
    Op.SIGN: _vjp_piecewise_constant, Op.FLOOR: _vjp_piecewise_constant,
    Op.CEIL: _vjp_piecewise_constant, Op.ROUND: _vjp_piecewise_constant,
    Op.TRUNC: _vjp_piecewise_constant,
    Op.TANH: _vjp_tanh, Op.SIGMOID: _vjp_sigmoid, Op.ERF: _vjp_erf, Op.LOG1P: _vjp_log1p,
    Op.EXPM1: _vjp_expm1, Op.NOT: _vjp_none, Op.ISNAN: _vjp_none, Op.CAST: _vjp_cast,
    Op.DETACH: _vjp_none, Op.CHECK: _vjp_none,
    # binary
    Op.ADD: _vjp_add, Op.SUB: _vjp_sub, Op.MUL: _vjp_mul, Op.DIV: _vjp_div,
    Op.FLOORDIV: _vjp_none, Op.MOD: _vjp_mod, Op.POW: _vjp_pow, Op.MAXIMUM: _vjp_maximum,
    Op.MINIMUM: _vjp_minimum, Op.ATAN2: _vjp_atan2,
    Op.LT: _vjp_none, Op.LE: _vjp_none, Op.GT: _vjp_none, Op.GE: _vjp_none, Op.EQ: _vjp_none,
    Op.NE: _vjp_none, Op.AND: _vjp_none, Op.OR: _vjp_none, Op.XOR: _vjp_none,
    # select
    Op.WHERE: _vjp_where, Op.REPLACE: _vjp_replace,
    # reductions
    Op.SUM: _vjp_sum, Op.PROD: _vjp_prod, Op.MAX: _vjp_extremum_reduce,
    Op.MIN: _vjp_extremum_reduce, Op.ARGMAX: _vjp_none, Op.ARGMIN: _vjp_none,
    # movement
    Op.RESHAPE: _vjp_reshape, Op.PERMUTE: _vjp_permute, Op.EXPAND: _vjp_expand, Op.PAD: _vjp_pad,
    Op.SLICE: _vjp_slice, Op.FLIP: _vjp_flip,
    # contraction and indexing
    Op.MATMUL: _vjp_matmul, Op.GATHER: _vjp_gather, Op.SCATTER_ADD: _vjp_scatter_add,
    Op.CUMSUM: _vjp_cumsum,
}

assert set(VJP_RULES) == set(Op), f"no VJP rule for {set(Op) - set(VJP_RULES)}"


def rule_name(rule: Rule) -> str:
    """The short name of a rule, as `describe` prints it ("mul" for `_vjp_mul`)."""
    return rule.__name__.removeprefix("_vjp_")


# ---------------------------------------------------------------------------------------------
# the transform

def grad(outputs: list[Node], cotangents: list[Node], wrt: list[Node]) -> list[Optional[Node]]:
    """Gradient nodes of sum_i <outputs[i], cotangents[i]> with respect to each node of `wrt`.

    Each cotangent has its output's shape and dtype. The result holds, per `wrt` node, an IR node
    of that node's shape and dtype, or None where the sum does not depend on it differentiably
    (no path, only through integer/bool values or detach, or a non-floating `wrt` node).
    Realized nodes are differentiated through (their inputs are kept for this). Nothing is
    computed: realize the returned nodes, possibly together with the forward graph.
    """
    assert len(outputs) == len(cotangents), "one cotangent per output"
    # (sets and dicts of nodes hash them by identity: cheaper than keying by id())
    order = toposort(list(outputs), stop_at_realized=False)
    on_path = _nodes_on_path(order, wrt)
    # nodes never recorded as gradient nodes: those that existed before (even if a rule reuses
    # them), and the ones recorded already (so later walks stop at them)
    known = set(order)
    known.update(cotangents)

    grads: dict[Node, Node] = {}
    for out, cotangent in zip(outputs, cotangents):
        assert cotangent.shape == out.shape and cotangent.dtype is out.dtype, (
            f"cotangent {cotangent} does not match output {out}")
        if out in on_path:
            _accumulate(grads, out, cotangent, known)

    for node in reversed(order):
        g = grads.get(node)
        if g is None or not node.inputs:
            continue
        rule = VJP_RULES[node.op]
        input_grads = rule(node, g)
        assert len(input_grads) == len(node.inputs), f"rule for {node.op} returned a wrong arity"
        for i, (inp, ig) in enumerate(zip(node.inputs, input_grads)):
            if ig is None or inp not in on_path:
                continue
            assert ig.shape == inp.shape and ig.dtype is inp.dtype, (
                f"{rule_name(rule)} rule: gradient {ig} for input {inp}")
            _record(ig, node, rule_name(rule), known, input_index=i)
            _accumulate(grads, inp, ig, known)
    return [grads.get(w) for w in wrt]


def _nodes_on_path(order: list[Node], wrt: list[Node]) -> set[Node]:
    """The floating nodes from which some `wrt` node is reachable through floating nodes.

    Integer and bool values carry no gradient, so a path through one does not count.
    """
    on_path: set[Node] = set()
    targets = set(wrt)
    for node in order:           # inputs come first, so one forward sweep suffices
        if not node.dtype.is_floating_point:
            continue
        if node in targets:
            on_path.add(node)
            continue
        for i in node.inputs:
            if i in on_path:
                on_path.add(node)
                break
    return on_path


def _accumulate(grads: dict[Node, Node], node: Node, g: Node, known: set[Node]) -> None:
    """Add `g` to the cotangent of `node` (a node with several users gets the sum)."""
    previous = grads.get(node)
    if previous is None:
        grads[node] = g
        return
    total = add(previous, g)
    _record(total, node, ACCUMULATE, known)
    grads[node] = total


def _record(root: Node, forward: Node, rule: str, known: set[Node],
            input_index: Optional[int] = None) -> None:
    """Note the origin of `root` and of the new nodes under it that no one has claimed yet
    (`known`: nodes not to record; the ones recorded here join it)."""
    if root in known:
        return
    stack = [root]
    while stack:
        node = stack.pop()
        if node in known:
            continue
        known.add(node)
        if node.origin is None:         # (else recorded by an earlier transform)
            node.origin = (forward, rule, input_index if node is root else None)
            stack.extend(node.inputs)


def describe(node: Node) -> Optional[str]:
    """Where a gradient node comes from, e.g. "grad of MUL input 1 (rule: mul)"; None if not one."""
    if node.origin is None:
        return None
    forward, rule, index = node.origin
    if rule == ACCUMULATE:
        return f"grad of {forward.op.name} output, summed over its users (rule: {rule})"
    if index is None:
        return f"part of the grad of {forward.op.name} (rule: {rule})"
    return f"grad of {forward.op.name} input {index} (rule: {rule})"
