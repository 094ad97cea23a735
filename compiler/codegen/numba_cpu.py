"""Codegen: a `Kernel` becomes the source of one readable Numba `njit` function.

The function takes the output and the input buffers as flat 1-D arrays and computes every index
itself from the kernel's index maps, with shapes and strides baked in as literals so LLVM can
simplify and vectorize the arithmetic. Constants from Python numbers are *scalar arguments*
(one-element input arrays, read into `c0`, `c1`, ... before the loops), so a new value reuses the
compiled kernel; only literal constants (`KConst.slot is None`) are written into the source.
Per-op templates live in one table (`UNARY`, `BINARY`).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from compiler import dtypes
from compiler.dtypes import DType
from compiler.ir.kernel import KConst, KGather, KLoad, KMasked, KOp, KReduce, Kernel
from compiler.ir.node import Bounds
from compiler.ir.ops import Op
from compiler.passes.views import ShapeTracker, contiguous_strides

# 'nnan'/'ninf' are left out on purpose: they let LLVM delete NaN checks (isnan, maximum, ...);
# so is 'arcp': it turns 1 / sqrt(x) into an rsqrt estimate that gives NaN for 0 and inf; and so
# is 'reassoc': it cancels x - x to 0 (NaN for inf/NaN x: x - x.amax(1) over a size-1 axis). Sums
# still vectorize: their accumulating add alone is reassociable (scalar_ops.fadd_reassoc)
FASTMATH_FLAGS = {"nsz", "contract", "afn"}
FASTMATH_OPTION = "{" + ", ".join(repr(f) for f in sorted(FASTMATH_FLAGS)) + "}"     # as written in source
PARALLEL_MIN_ELEMENTS = 1 << 16     # below this, thread start-up costs more than it saves
SUM_BLOCK = 1024                    # float sums: elements per partial sum (see blocked_sum)
ACC_TILE = 4096                     # column reductions: accumulators per tile (32 KiB of float64)
MAX_SPLIT_LOOPS = 16                # map kernels: most copies of the inner loop (see _split_points)
NEVER = "False"                     # an index condition known false (see _Emitter.index)

FAST_F32 = {Op.EXP: "exp_f32", Op.LOG: "log_f32", Op.TANH: "tanh_f32", Op.SIGMOID: "sigmoid_f32",
            Op.ERF: "erf_f32"}
"""Ops with a vectorizable float32 helper in compiler.codegen.fastmath (no SVML here)."""

UNARY = {
    Op.NEG: "(-{0})", Op.EXP: "np.exp({0})", Op.LOG: "np.log({0})", Op.SIN: "np.sin({0})",
    Op.COS: "np.cos({0})", Op.TAN: "np.tan({0})", Op.SQRT: "np.sqrt({0})", Op.ABS: "abs({0})",
    Op.SIGN: "sign({0})", Op.FLOOR: "np.floor({0})", Op.CEIL: "np.ceil({0})",
    Op.ROUND: "np.rint({0})", Op.TRUNC: "np.trunc({0})", Op.TANH: "np.tanh({0})",
    Op.SIGMOID: "sigmoid({0})", Op.ERF: "erf({0})", Op.LOG1P: "np.log1p({0})",
    Op.EXPM1: "np.expm1({0})", Op.ISNAN: "({0} != {0})", Op.DETACH: "{0}",
}
BINARY = {
    Op.ADD: "({0} + {1})", Op.SUB: "({0} - {1})", Op.MUL: "({0} * {1})", Op.DIV: "({0} / {1})",
    Op.FLOORDIV: "({0} // {1})", Op.MOD: "({0} % {1})", Op.POW: "({0} ** {1})",
    Op.MAXIMUM: "maximum({0}, {1})", Op.MINIMUM: "minimum({0}, {1})", Op.ATAN2: "np.arctan2({0}, {1})",
    Op.LT: "({0} < {1})", Op.LE: "({0} <= {1})", Op.GT: "({0} > {1})", Op.GE: "({0} >= {1})",
    Op.EQ: "({0} == {1})", Op.NE: "({0} != {1})", Op.AND: "({0} & {1})", Op.OR: "({0} | {1})",
    Op.XOR: "({0} ^ {1})", Op.REPLACE: "{1}",
}


def compute_dtype(dtype: DType) -> DType:
    """Numba has no float16 arithmetic on the CPU: such buffers are computed in float32."""
    return dtypes.float32 if dtype is dtypes.float16 else dtype


def literal(value, dtype: DType) -> str:
    dtype = compute_dtype(dtype)
    if dtype is dtypes.bool_:
        return "True" if value else "False"
    if dtype.is_floating_point:
        text = {math.inf: "np.inf", -math.inf: "-np.inf"}.get(value) or ("np.nan" if value != value else repr(float(value)))
        # float32 literals stay float32: a bare Python float would promote the math to float64
        return f"np.float32({text})" if dtype is dtypes.float32 else text
    return repr(int(value)) if dtype is dtypes.int64 else f"np.{dtype.name}({int(value)})"


def cast(value: str, dtype: DType) -> str:
    dtype = compute_dtype(dtype)
    if dtype is dtypes.bool_:
        return f"({value} != 0)"
    return f"np.{dtype.name}({value})"


def _reduce_init(op: Op, dtype: DType) -> str:
    if op is Op.SUM:
        return "0.0" if dtype.is_floating_point else "0"
    if op is Op.PROD:
        return "1.0" if dtype.is_floating_point else "1"
    if dtype.is_floating_point:
        # typed like the values (np.float32(-np.inf)): max/min then stay in float32 and vectorize
        return literal(-math.inf if op in (Op.MAX, Op.ARGMAX) else math.inf, dtype)
    if dtype is dtypes.bool_:
        return "False" if op in (Op.MAX, Op.ARGMAX) else "True"
    info = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-2**15, 2**15 - 1),
            "int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}[dtype.name]
    return str(info[0] if op in (Op.MAX, Op.ARGMAX) else info[1])


class _Emitter:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.lines: list[str] = []
        self.indent = 1
        self.counter = 0
        self.scope: dict[int, str] = {}           # id(expr) -> variable, for the current loop body
        self.reduced: dict[int, str] = {}         # id(KReduce) -> variable, for the whole row
        self.helpers: set[str] = set()
        self.stash: dict[int, object] = {}        # id(KReduce) -> body subexpression stored in out
        self.known: frozenset[str] = frozenset()  # index conditions true here (inside a masked value)
        self.ranges: dict[str, tuple[int, int]] = {}   # loop variable -> [start, stop) of this loop
        self.checks: list[Bounds] = []            # what each error code stands for (code k: k - 1)
        # scalar arguments: input slot -> the local holding its value (c0, c1, ...)
        self.scalars = {slot: f"c{j}" for j, slot in enumerate(kernel.scalar_slots)}

    def emit(self, line: str):
        self.lines.append("    " * self.indent + line)

    def fresh(self, prefix="v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def open_loops(self, dims, parallel_first=False):
        for j, d in enumerate(dims):
            loop = "numba.prange" if (j == 0 and parallel_first) else "range"
            self.emit(f"for i{d} in {loop}({self.loop_shape[d]}):")
            self.indent += 1

    # -- indexing ----------------------------------------------------------------------------
    def index(self, tracker: ShapeTracker, idx: list[str]) -> tuple[str, list[str]]:
        """Flat buffer index and validity conditions for reading `tracker` at `idx`; a condition
        on a loop variable whose range (`ranges`) decides it is left out if true, NEVER if false."""
        conds: list[str] = []
        for level, view in enumerate(reversed(tracker.views)):
            terms = [str(view.offset)] if view.offset else []
            if view.mask is not None:
                for e, (lo, hi), n in zip(idx, view.mask, view.shape):
                    start, stop = self.ranges.get(e, (0, n)) if level == 0 else (0, n)
                    if lo <= start and stop <= hi:
                        continue
                    if stop <= lo or hi <= start:
                        return "0", [NEVER]
                    conds.append(f"{lo} <= {e} < {hi}" if lo else f"{e} < {hi}")
            for e, s in zip(idx, view.strides):
                if s and e != "0":
                    terms.append(e if s == 1 else f"{e} * {s}")
            flat = " + ".join(terms) or "0"
            if level == len(tracker.views) - 1:
                return _unsigned(flat), conds
            below = tracker.views[-2 - level].shape
            strides = contiguous_strides(below)
            flat = f"({flat})"
            idx = []
            for d, (n, s) in enumerate(zip(below, strides)):
                if n == 1:
                    idx.append("0")
                    continue
                part = flat if s == 1 else f"({flat} // {s})"
                idx.append(part if d == 0 or all(m == 1 for m in below[:d]) else f"({part} % {n})")
        raise AssertionError("unreachable")

    # -- expressions -------------------------------------------------------------------------
    def value(self, e, idx: list[str]) -> str:
        if isinstance(e, KReduce):
            return self.reduced[id(e)]
        if isinstance(e, KConst):
            return literal(e.value, e.dtype) if e.slot is None else self.scalars[e.slot]
        if id(e) in self.scope:
            return self.scope[id(e)]
        if isinstance(e, KMasked):
            return self.masked(e, idx)
        if isinstance(e, KLoad):
            flat, conds = self.index(e.tracker, idx)
            conds = [c for c in conds if c not in self.known]
            if conds == [NEVER]:
                text = literal(0, e.dtype)
            elif conds:
                text = f"(in{e.slot}[{flat}] if {' and '.join(conds)} else {literal(0, e.dtype)})"
            else:
                text = f"in{e.slot}[{flat}]"
        elif isinstance(e, KGather):
            position = self.in_range(e.index, self.value(e.index, idx), e.tracker.shape[e.axis], e.axis)
            if position is None:            # (an empty axis: every index is out of range)
                text = literal(0, e.dtype)
            else:
                source_idx = list(idx)
                source_idx[e.axis] = position
                flat, _ = self.index(e.tracker, source_idx)
                text = f"in{e.slot}[{flat}]"
        elif isinstance(e, KOp) and e.op is Op.CHECK:
            text = self.guard(e.arg, self.value(e.srcs[0], idx)) or literal(0, e.dtype)
        else:
            args = [self.value(s, idx) for s in e.srcs]
            text = self.op_text(e, args)
        name = self.fresh()
        self.emit(f"{name} = {text}")
        self.scope[id(e)] = name
        return name

    def guard(self, bounds: Bounds, raw: str):
        """Check the index `raw` against `bounds`: a value outside them records its error code and
        the value in `err` (unless an earlier error is recorded: the first one wins) and reads
        position 0 instead, so nothing is read or written outside a buffer; the realization that
        ran the kernel then raises (`Bounds.exception`). Returns the variable holding the checked
        (wrapped) index, or None for an empty range (every value is an error).

        The cost is one compare and a never-taken branch on a value already computed (measured:
        0-2% of a gather or scatter kernel, benchmarks W6-W8). The branch's store to `err` keeps a
        loop from vectorizing, so a position that does not vary along the innermost loop is checked
        before it (`hoist_gather_indices`)."""
        if bounds not in self.checks:
            self.checks.append(bounds)
        code, n = self.checks.index(bounds) + 1, bounds.size
        record = [f"    err[0] = errbase + {code}", f"    err[1] = {raw}"]
        if n == 0:
            self.emit("if err[0] == 0:")
            for line in record:
                self.emit(line)
            return None
        value = raw
        if bounds.wrap:
            value = self.fresh("w")
            self.emit(f"{value} = {raw} + {n} if {raw} < 0 else {raw}")
        ok = self.fresh("ok")
        self.emit(f"{ok} = 0 <= {value} < {n}")
        first = "err[0] == 0"
        if bounds.low_message is not None:      # a value below the range is the error reported
            low = -n if bounds.wrap else 0      # (torch's one_hot checks the minimum first)
            first = f"({first} or (err[0] == errbase + {code} and {raw} < {low} <= err[1]))"
        self.emit(f"if not {ok} and {first}:")
        for line in record:
            self.emit(line)
        checked = self.fresh("g")
        self.emit(f"{checked} = {value} if {ok} else 0")
        return checked

    def hoist_gather_indices(self, e, idx: list[str], axis: int):
        """Emit the positions of the gathers in `e` that do not vary along loop `axis` (an
        embedding row's id while its row is copied), to be computed before that loop. LLVM would not
        move them out itself: the bounds check's store to `err` may alias the arrays the loop
        reads, and with the check in the loop the row copy did not vectorize (9% slower)."""
        stack, seen = [e], set()
        while stack:
            x = stack.pop()
            if id(x) in seen:
                continue
            seen.add(id(x))
            if isinstance(x, KGather):
                if _invariant(x.index, axis):
                    self.value(x.index, idx)
                stack.append(x.index)
            elif isinstance(x, KOp):
                stack.extend(x.srcs)

    def in_range(self, expr, position: str, n: int, axis: int):
        """`position` (the value of `expr`), guarded to index an axis of `n` elements unless `expr`
        is a CHECK that already keeps it in range (the front-end checks every index a user gives,
        with the op's own error; this guard words a generic one)."""
        if isinstance(expr, KOp) and expr.op is Op.CHECK and 0 < expr.arg.size <= n:
            return position
        return self.guard(Bounds(n, False, "RuntimeError",
                                 f"index {{index}} is out of bounds for dimension {axis} with size {n}"), position)

    def masked(self, e: KMasked, idx: list[str]) -> str:
        """`if valid: v = value else: v = 0`. What the branch computes is visible in it only: the
        scope is restored after it, so a later use outside computes its own copy."""
        _, conds = self.index(e.tracker, idx)
        conds = [c for c in conds if c not in self.known]
        if conds == [NEVER]:                # (all padding in this loop's range)
            return literal(0, e.dtype)
        if not conds:                       # (all valid, or nested in a value masked the same way)
            name = self.value(e.value, idx)
            self.scope[id(e)] = name
            return name
        name = self.fresh("m")
        outer_scope, outer_known = self.scope, self.known
        self.scope, self.known = dict(outer_scope), outer_known | set(conds)
        self.emit(f"if {' and '.join(conds)}:")
        self.indent += 1
        self.emit(f"{name} = {self.value(e.value, idx)}")
        self.indent -= 1
        self.emit("else:")
        self.emit(f"    {name} = {literal(0, e.dtype)}")
        self.scope, self.known = outer_scope, outer_known
        self.scope[id(e)] = name
        return name

    def op_text(self, e: KOp, args: list[str]) -> str:
        op = e.op
        in_dtype = compute_dtype(e.srcs[0].dtype) if e.srcs else None
        if op is Op.CAST:
            return cast(args[0], e.dtype)
        if op is Op.WHERE:
            return f"({args[1]} if {args[0]} else {args[2]})"
        if op is Op.NOT:
            return f"(not {args[0]})" if in_dtype is dtypes.bool_ else f"(~{args[0]})"
        if in_dtype is dtypes.float32 and op in FAST_F32:
            self.helpers.add(FAST_F32[op])
            return f"{FAST_F32[op]}({args[0]})"
        if op is Op.DIV and self.kernel.mode == "row" and in_dtype.is_floating_point and _row_scalar(e.srcs[1]):
            # dividing a row by its sum (softmax) or std (layer norm): one reciprocal per row, which
            # LLVM hoists out of the loop, and a multiply per element, as torch does (a divide per
            # element costs softmax 15%; the result differs by at most an ulp)
            return f"({args[0]} * ({literal(1, in_dtype)} / {args[1]}))"
        if op in (Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC) and not in_dtype.is_floating_point:
            return args[0]
        if op is Op.ABS and in_dtype is dtypes.bool_:
            return args[0]
        if op is Op.SIGN:
            return cast(f"sign({args[0]})", e.dtype)     # sign() gives an int; keep the float type
        template = UNARY.get(op) or BINARY[op]
        if op is Op.DIV and not in_dtype.is_floating_point:
            raise TypeError("integer true division must be cast to floating point first")
        text = template.format(*args)
        if in_dtype is not None and in_dtype is not dtypes.float64 and in_dtype.is_floating_point and op in (Op.POW,):
            text = f"np.float32({text})"
        return text

    def reduction(self, r: KReduce, axes, full_idx: list[str]):
        acc = self.fresh("acc")
        src_dtype = compute_dtype(r.body.dtype)
        op = r.op
        self.emit(f"{acc} = {_reduce_init(op, src_dtype)}")
        best = None
        if op in (Op.ARGMAX, Op.ARGMIN):
            best = self.fresh("best")
            self.emit(f"{best} = {_reduce_init(op, src_dtype)}")
            self.emit(f"{acc} = 0")
        outer_scope = self.scope
        self.scope = {}
        parallel = (not any(d not in axes for d in range(len(self.kernel.full_shape)))
                    and op is Op.SUM and math.prod(self.kernel.full_shape) >= PARALLEL_MIN_ELEMENTS)
        indent = self.indent
        if op is Op.SUM and src_dtype.is_floating_point:
            self.blocked_sum(acc, r, axes, full_idx, src_dtype, parallel)
        else:
            self.open_loops(axes, parallel_first=parallel)
            self.accumulate(acc, r, axes, full_idx, src_dtype, best)
        self.indent = indent
        self.scope = outer_scope
        if op is Op.SUM or op is Op.PROD:
            result = self.fresh("r")
            self.emit(f"{result} = {cast(acc, r.dtype)}")
            acc = result
        self.reduced[id(r)] = acc

    def body_value(self, r: KReduce, full_idx: list[str]) -> str:
        """The value a reduction loop reduces; stores its stashed subexpression (see _row_stash)."""
        v = self.value(r.body, full_idx)
        if id(r) in self.stash:
            self.emit(f"out[{_flat_out(self.kernel.full_shape, full_idx)}] = {self.scope[id(self.stash[id(r)])]}")
        return v

    def accumulate(self, acc: str, r: KReduce, axes, full_idx: list[str], src_dtype: DType, best):
        """The innermost statement of a reduction loop nest."""
        op = r.op
        v = self.body_value(r, full_idx)
        if op is Op.SUM:
            self.emit(f"{acc} += {v}")
        elif op is Op.PROD:
            self.emit(f"{acc} *= {v}")
        elif op is Op.MAX:
            self.emit(f"{acc} = maximum({acc}, {v})")
        elif op is Op.MIN:
            self.emit(f"{acc} = minimum({acc}, {v})")
        else:
            flat = " + ".join(f"i{d} * {s}" if s != 1 else f"i{d}" for d, s in
                              zip(axes, contiguous_strides(tuple(self.kernel.full_shape[d] for d in axes))) if s) or "0"
            better = ">" if op is Op.ARGMAX else "<"
            nan_first = f" or ({v} != {v} and {best} == {best})" if src_dtype.is_floating_point else ""
            self.emit(f"if {v} {better} {best}{nan_first}:")
            self.emit(f"    {best} = {v}")
            self.emit(f"    {acc} = {flat}")

    def blocked_sum(self, acc: str, r: KReduce, axes, full_idx: list[str], dtype: DType, parallel: bool):
        """A float sum: partial sums in the values' dtype over blocks of the innermost reduced axis,
        added into the float64 `acc`. A float64 accumulator per float32 element would halve the
        vector width of the loop (and of the exp inside softmax's sum); the partial's add is
        reassociable (`fadd_reassoc`), so LLVM spreads it over the vector lanes, and short partials
        keep the error near the rounding of a short sum."""
        *outer, last = axes
        self.open_loops(outer, parallel_first=parallel)
        n, block = self.loop_shape[last], SUM_BLOCK
        part = self.fresh("part")
        if n > block:
            loop = "numba.prange" if parallel and not outer else "range"
            stop = f"b{last} * {block} + {block}"
            self.emit(f"for b{last} in {loop}({-(-n // block)}):")
            self.indent += 1
            self.emit(f"{part} = {literal(0, dtype)}")
            self.emit(f"for i{last} in range(b{last} * {block}, {stop if n % block == 0 else f'min({stop}, {n})'}):")
        else:
            self.emit(f"{part} = {literal(0, dtype)}")
            self.emit(f"for i{last} in range({n}):")
        self.indent += 1
        add = "fadd_fenced" if _may_cancel(r.body) else "fadd_reassoc"
        self.emit(f"{part} = {add}({part}, {self.body_value(r, full_idx)})")
        self.indent -= 1
        self.emit(f"{acc} += {part}")


def _may_cancel(body) -> bool:
    """Whether a summed value adds or subtracts two terms computed from a common subexpression
    (`x - x`, `(x + y) - x`). A reassociable add of such a value lets LLVM rewrite
    `part + (x - x)` into `(part + x) - x` and then to `part`, which drops the NaN of a NaN or
    infinite x; those sums add through an arithmetic fence (`fadd_fenced`: correct, not vectorized)."""
    for e in _subexprs(body).values():
        if isinstance(e, KOp) and e.op in (Op.ADD, Op.SUB) and len(e.srcs) == 2:
            left, right = (_subexprs(src) for src in e.srcs)
            if left.keys() & right.keys():
                return True
    return False


def _invariant(e, axis: int) -> bool:
    """Whether `e` is the same at every index along `axis` (conservative: loads whose outer view
    does not move along it, constants, and elementwise ops of those)."""
    if isinstance(e, KConst):
        return True
    if isinstance(e, KLoad):
        view = e.tracker.views[-1]
        return view.shape[axis] == 1 or view.strides[axis] == 0 and (
            view.mask is None or view.mask[axis] == (0, view.shape[axis]))
    if isinstance(e, KOp):
        return all(_invariant(s, axis) for s in e.srcs)
    return False


def _collect_reduces(expr) -> list[KReduce]:
    """Reductions in dependency order (a reduction nested in another's body comes first)."""
    order, seen = [], set()

    def walk(e):
        if id(e) in seen:
            return
        seen.add(id(e))
        for c in _children(e, into_reduce=True):
            walk(c)
        if isinstance(e, KReduce):
            order.append(e)

    walk(expr)
    return order


def _unsigned(flat: str) -> str:
    """A flat index as an unsigned integer. Numba wraps a signed index (`i < 0 ? i + n : i`), and
    inside prange bodies and loops with runtime bounds LLVM cannot prove i >= 0, so that select
    turns contiguous vector loads into gathers (softmax rows 2x slower). Valid indices are >= 0."""
    return flat if flat.isdigit() else f"np.uintp({flat})"


COSTLY = frozenset({Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.TAN, Op.TANH, Op.SIGMOID, Op.ERF, Op.LOG1P,
                    Op.EXPM1, Op.POW, Op.ATAN2})
"""Ops worth storing and reloading rather than computing twice (see _row_stash)."""


def _children(e, into_reduce: bool = False, into_masked: bool = True) -> tuple:
    """The subexpressions `e` computes from (a reduction's body and a masked value optionally)."""
    if isinstance(e, KOp):
        return e.srcs
    if isinstance(e, KGather):
        return (e.index,)
    if isinstance(e, KMasked):
        return (e.value,) if into_masked else ()
    if isinstance(e, KReduce):
        return (e.body,) if into_reduce else ()
    return ()


def _subexprs(e, found=None, into_masked: bool = True) -> dict:
    """id -> expression for `e` and everything it computes, not entering reductions (nor masked
    values if not `into_masked`)."""
    found = {} if found is None else found
    if id(e) not in found:
        found[id(e)] = e
        for c in _children(e, into_masked=into_masked):
            _subexprs(c, found, into_masked)
    return found


def _row_scalar(e) -> bool:
    """True for a value computed from reductions (and constants) only: the same for a whole row."""
    leaves = [x for x in _subexprs(e).values() if not isinstance(x, KOp)]
    return any(isinstance(x, KReduce) for x in leaves) and all(isinstance(x, (KReduce, KConst)) for x in leaves)


def _structure(e, memo: dict) -> tuple:
    """A key equal for equal computations: fusion builds a reduction's body and a row kernel's
    write expression as separate objects, even where they compute the same thing."""
    if id(e) not in memo:
        if isinstance(e, KLoad):
            key = ("load", e.slot, e.tracker, e.dtype.name)
        elif isinstance(e, KConst):
            key = ("const", repr(e.value), e.dtype.name) if e.slot is None else ("scalar", e.position)
        elif isinstance(e, KReduce):
            key = ("reduce", id(e))
        elif isinstance(e, KGather):
            key = ("gather", e.slot, e.tracker, e.axis, e.dtype.name, _structure(e.index, memo))
        elif isinstance(e, KMasked):
            key = ("masked", e.tracker, e.dtype.name, _structure(e.value, memo))
        else:
            key = (e.op, e.arg, e.dtype.name, tuple(_structure(c, memo) for c in e.srcs))
        memo[id(e)] = key
    return memo[id(e)]


def _row_stash(k: Kernel):
    """Row kernels: the largest costly subexpression that both a reduction's loop and the write
    loop compute, as (that reduction, its copy in the body, its copies in the write expression).
    Softmax's exp(x - max) is summed, then written divided by the sum: the sum loop stores it in
    `out` and the write loop reads it back instead of computing exp twice. Safe because `out` is
    a fresh buffer that no input aliases, and the write loop reads each element before writing it."""
    if k.mode != "row":
        return None
    memo: dict = {}
    written: dict = {}
    for e in _subexprs(k.expr).values():
        if isinstance(e, KOp):
            written.setdefault(_structure(e, memo), []).append(e)
    best = None
    for r in _collect_reduces(k.expr):
        # (not inside a masked value: the reduction loop stores what it computes at every index)
        for e in _subexprs(r.body, into_masked=False).values():
            if not (isinstance(e, KOp) and _structure(e, memo) in written
                    and compute_dtype(e.dtype) is compute_dtype(k.out_dtype)):
                continue
            inner = [x for x in _subexprs(e).values() if isinstance(x, KOp)]
            if any(x.op in COSTLY for x in inner) and (best is None or len(inner) > best[0]):
                best = (len(inner), r, e, written[_structure(e, memo)])
    return best and best[1:]


def _flat_out(shape, names) -> str:
    terms = [n if s == 1 else f"{n} * {s}" for n, s in zip(names, contiguous_strides(shape)) if s and n != "0"]
    return _unsigned(" + ".join(terms) or "0")


def _helpers_hash() -> str:
    """Hash of the helper modules kernels inline. Numba's cache only checks a function's own file, so
    the hash is part of every kernel's source (and name): editing a helper gives new files."""
    here = Path(__file__).parent
    text = b"".join((here / name).read_bytes() for name in ("fastmath.py", "scalar_ops.py"))
    return hashlib.sha1(text).hexdigest()[:16]


HELPERS_HASH = _helpers_hash()


def generate(kernel: Kernel) -> tuple[str, str]:
    """(function name, module source) for `kernel`; the name is derived from the source."""
    em = _Emitter(kernel)
    em.loop_shape = kernel.out_shape if kernel.kind != "loop" else kernel.full_shape
    numel = math.prod(em.loop_shape)
    if kernel.kind == "loop":
        _loop_body(em, kernel)
        parallel = any(" numba.prange(" in line for line in em.lines)
    elif kernel.kind == "cumsum":
        _cumsum_body(em, kernel)
        parallel = False
    else:
        _scatter_body(em, kernel)
        parallel = False
    # a kernel that checks indices records the first bad one in `err` (code, value); `errbase` is
    # added to its codes (0 when it runs alone; a driver gives each kernel its own range)
    checks = ["err", "errbase"] if em.checks else []
    kernel.checks = em.checks
    args = ", ".join(["out"] + [f"in{i}" for i in range(len(kernel.input_dtypes))] + checks)
    if em.scalars:
        # read once, before the loops: a local the loops keep in a register (a load from the
        # argument inside a loop could alias `out` for LLVM and keep the loop from vectorizing);
        # typed like the array, so a float32 scalar keeps float32 math float32
        em.lines[:0] = ["    # scalar arguments (Python numbers in the expression): one-element arrays"] + [
            f"    {name} = in{slot}[0]" for slot, name in em.scalars.items()]
    body = "\n".join(em.lines)
    floating = any(compute_dtype(d).is_floating_point for d in kernel.input_dtypes + [kernel.out_dtype])
    flags = f"fastmath={FASTMATH_OPTION}, " if floating else ""
    digest = hashlib.sha1(f"{HELPERS_HASH}\n{args}\n{body}\n{flags}{parallel}".encode()).hexdigest()[:16]
    name = f"k_{kernel.kind}_{digest}"
    helpers = sorted(em.helpers)
    source = "\n".join([
        f"# helpers: {HELPERS_HASH}",
        "import numba",
        "import numpy as np",
        "from compiler.codegen.scalar_ops import maximum, minimum, sigmoid, erf, sign, fadd_reassoc, fadd_fenced",
        *( [f"from compiler.codegen.fastmath import {', '.join(helpers)}"] if helpers else []),
        "",
        "",
        f"@numba.njit({flags}parallel={parallel}, error_model='numpy', cache=True)",
        f"def {name}({args}):",
        f"    # {kernel.kind} kernel, {kernel.mode} mode, output {kernel.out_dtype.name}{list(kernel.out_shape)}, "
        f"{numel} iterations",
        body,
        "",
    ])
    return name, source


def _loop_body(em: _Emitter, k: Kernel):
    columns = _column_axes(k)
    if columns:
        _column_body(em, k, *columns)
        return
    nd = len(k.full_shape)
    outer = [d for d in range(nd) if d not in k.reduce_axes]
    numel = math.prod(k.full_shape)
    parallel = bool(outer) and numel >= PARALLEL_MIN_ELEMENTS and k.full_shape[outer[0]] > 1
    full_idx = [f"i{d}" for d in range(nd)]
    segments = _split_points(k)
    if segments:
        # one copy of the innermost loop per segment, each without the branches it decides
        em.open_loops(outer[:-1], parallel_first=parallel)
        last = outer[-1]
        loop = "numba.prange" if parallel and len(outer) == 1 else "range"
        for start, stop in segments:
            em.emit(f"for i{last} in {loop}({start}, {stop}):")
            em.indent += 1
            em.scope, em.ranges = {}, {f"i{last}": (start, stop)}
            em.emit(f"out[{_flat_out(k.full_shape, full_idx)}] = {em.value(k.expr, full_idx)}")
            em.indent -= 1
        em.ranges = {}
        return
    if k.mode == "map" and len(outer) > 1:
        # gather positions that do not vary along the innermost loop are computed (and checked)
        # before it: see _Emitter.hoist_gather_indices
        em.open_loops(outer[:-1], parallel_first=parallel)
        em.hoist_gather_indices(k.expr, full_idx, outer[-1])
        em.open_loops(outer[-1:])
    else:
        em.open_loops(outer, parallel_first=parallel)
    stash = _row_stash(k)
    if stash:
        em.stash[id(stash[0])] = stash[1]
    for r in _collect_reduces(k.expr):
        em.reduction(r, k.reduce_axes, full_idx)
    if k.mode == "reduce":
        idx = [("0" if d in k.reduce_axes else f"i{d}") for d in range(nd)]
        v = em.value(k.expr, idx)
        reduced_shape = tuple(1 if d in k.reduce_axes else n for d, n in enumerate(k.full_shape))
        em.emit(f"out[{_flat_out(reduced_shape, idx)}] = {v}")
        return
    if k.mode == "row":
        em.scope = {}
        em.open_loops(k.reduce_axes)
        if stash:
            stored = em.fresh()
            em.emit(f"{stored} = out[{_flat_out(k.full_shape, full_idx)}]")
            em.scope.update((id(e), stored) for e in stash[2])
    v = em.value(k.expr, full_idx)
    em.emit(f"out[{_flat_out(k.full_shape, full_idx)}] = {v}")


def _split_points(k: Kernel):
    """Map kernels with masked values (cat of computed pieces): the [start, stop) segments that
    split the innermost loop where a mask on it begins or ends, or None.

    Inside one segment each masked value is all valid or all padding, so its `if` goes away and
    the loop vectorizes (a branch on the loop index in the loop body keeps LLVM from vectorizing
    it: `cat([a.exp(), b * 2], 1)` ran 2.4x slower). Masks on outer axes stay branches: LLVM
    hoists those out of the inner loop.
    """
    if k.mode != "map" or not k.full_shape or k.full_shape[-1] <= 1:
        return None
    n = k.full_shape[-1]
    points = {0, n}
    for e in _subexprs(k.expr).values():
        if isinstance(e, KMasked) and e.tracker.views[-1].mask is not None:
            points.update(min(max(p, 0), n) for p in e.tracker.views[-1].mask[-1])
    points = sorted(points)
    if len(points) <= 2 or len(points) - 1 > MAX_SPLIT_LOOPS:
        return None
    return list(zip(points, points[1:]))


def _column_axes(k: Kernel):
    """(lead, inner) kept axes when a reduction kernel should loop its reduced axes outside the kept
    axes that follow them (`_column_body`), else None.

    Looping the reduced axes innermost (one value per output element) is right when they are the
    contiguous ones (`x.sum(1)`); for `x.sum(0)` of a row-major matrix it reads the input column by
    column with a stride of a whole row, 40x slower than numpy. Which axis is contiguous depends on
    the loads' views (a transposed input flips it), so the loads vote: the innermost loop should run
    along the axis where their strides add up to less, each counted up to 16 (a cache line of
    float32: past it every read touches a new line) and 0 where a load does not move.
    """
    shape = k.full_shape
    if k.mode not in ("reduce", "row") or not k.reduce_axes or 0 in shape:
        return None
    last = max(k.reduce_axes)
    moving = [d for d, n in enumerate(shape) if n > 1]
    reduced = [d for d in moving if d in k.reduce_axes]
    if not reduced or moving[-1] <= last:      # no kept axis of more than one element after them
        return None
    loads = [e for r in _collect_reduces(k.expr) for e in _subexprs(r.body).values() if isinstance(e, KLoad)]
    if k.mode == "row":
        loads += [e for e in _subexprs(k.expr).values() if isinstance(e, KLoad)]

    def cost(axis):
        strides = (abs(e.tracker.views[-1].strides[axis]) if e.tracker.views[-1].shape[axis] > 1 else 0
                   for e in loads)
        return sum(min(s, 16) for s in strides)

    if cost(moving[-1]) >= cost(reduced[-1]):
        return None
    return [d for d in range(last) if d not in k.reduce_axes], list(range(last + 1, len(shape)))


def _np_type(dtype: DType) -> str:
    dtype = compute_dtype(dtype)
    return "np.bool_" if dtype is dtypes.bool_ else f"np.{dtype.np_dtype.name}"


def _column_body(em: _Emitter, k: Kernel, lead: list[int], inner: list[int]):
    """A reduction whose kept axes `inner` follow its reduced axes: per `lead` index, each reduction
    runs over the reduced axes in the outer loops and accumulates into a row of accumulators, one
    per `inner` element, so the innermost loop walks the kept axis (contiguous reads, vectorized);
    then the epilogue (reduce mode) or the write loop (row mode) reads the accumulators.

    The row is split into tiles of at most ACC_TILE accumulators along the first moving inner axis,
    so it stays in L1 (`x.sum(0)` of a [64, 256, 256] tensor needs 65536). Float sums and
    products accumulate in float64, which costs nothing here (the loop is bound by memory) and keeps
    a float32 sum over thousands of rows as accurate as torch's cascaded one. Large kernels run the
    first lead loop, or else the tiles, in parallel; each parallel iteration owns its region of the
    accumulator arrays (allocated once, before the loops: allocations inside a prange are hoisted
    and shared by Numba).
    """
    shape, nd = k.full_shape, len(k.full_shape)
    reduce_axes = list(k.reduce_axes)
    full_idx = [f"i{d}" for d in range(nd)]
    a = next(d for d in inner if shape[d] > 1)             # the axis the tiles split
    rest = math.prod(shape[d] for d in inner if d > a)
    chunk = max(1, min(shape[a], ACC_TILE // rest))
    tiles = -(-shape[a] // chunk)
    size = chunk * rest
    big = math.prod(shape) >= PARALLEL_MIN_ELEMENTS
    par_lead = big and bool(lead) and shape[lead[0]] > 1
    par_tiles = big and not par_lead and tiles > 1 and all(shape[d] == 1 for d in lead)
    regions, region = (shape[lead[0]], f"i{lead[0]}") if par_lead else (tiles, f"t{a}") if par_tiles else (1, "")

    names = [f"(i{a} - t{a} * {chunk})" if tiles > 1 else f"i{a}"] + [f"i{d}" for d in inner if d > a]
    local_shape = (chunk,) + tuple(shape[d] for d in inner if d > a)
    terms = [n if s == 1 else f"{n} * {s}" for n, s in zip(names, contiguous_strides(local_shape)) if s]
    if regions > 1:
        terms.insert(0, f"{region} * {size}")
    slot = _unsigned(" + ".join(terms) or "0")

    def open_inner():
        """The loops over this tile's kept elements; `j` is the element's accumulator."""
        for d in inner:
            if d == a and tiles > 1:
                stop = f"t{a} * {chunk} + {chunk}"
                em.emit(f"for i{a} in range(t{a} * {chunk}, "
                        f"{stop if shape[a] % chunk == 0 else f'min({stop}, {shape[a]})'}):")
            else:
                em.emit(f"for i{d} in range({shape[d]}):")
            em.indent += 1
        em.emit(f"j = {slot}")

    reduces = _collect_reduces(k.expr)
    arrays = {}
    for r in reduces:
        src = compute_dtype(r.body.dtype)
        if r.op in (Op.SUM, Op.PROD):
            acc_type = "np.float64" if src.is_floating_point else "np.int64"
        else:
            acc_type = "np.int64" if r.op in (Op.ARGMAX, Op.ARGMIN) else _np_type(src)
        acc = em.fresh("acc")
        em.emit(f"{acc} = np.empty({regions * size}, {acc_type})")
        best = None
        if r.op in (Op.ARGMAX, Op.ARGMIN):
            best = em.fresh("best")
            em.emit(f"{best} = np.empty({regions * size}, {_np_type(src)})")
        arrays[id(r)] = acc, best
    stash = _row_stash(k)
    if stash:
        em.stash[id(stash[0])] = stash[1]

    em.open_loops(lead, parallel_first=par_lead)
    if tiles > 1:
        em.emit(f"for t{a} in {'numba.prange' if par_tiles else 'range'}({tiles}):")
        em.indent += 1
    for r in reduces:
        src = compute_dtype(r.body.dtype)
        acc, best = arrays[id(r)]
        indent = em.indent
        open_inner()
        if best:
            em.emit(f"{best}[j] = {_reduce_init(r.op, src)}")
            em.emit(f"{acc}[j] = 0")
        else:
            em.emit(f"{acc}[j] = {_reduce_init(r.op, src)}")
        em.indent, em.scope = indent, {}
        em.open_loops(reduce_axes)
        open_inner()
        em.accumulate(f"{acc}[j]", r, reduce_axes, full_idx, src, best and f"{best}[j]")
        em.indent, em.scope = indent, {}
        em.reduced[id(r)] = cast(f"{acc}[j]", r.dtype) if r.op in (Op.SUM, Op.PROD) else f"{acc}[j]"
    if k.mode == "reduce":
        open_inner()
        idx = [("0" if d in k.reduce_axes else f"i{d}") for d in range(nd)]
        reduced_shape = tuple(1 if d in k.reduce_axes else n for d, n in enumerate(shape))
        em.emit(f"out[{_flat_out(reduced_shape, idx)}] = {em.value(k.expr, idx)}")
        return
    em.open_loops(reduce_axes)
    open_inner()
    if stash:
        stored = em.fresh()
        em.emit(f"{stored} = out[{_flat_out(shape, full_idx)}]")
        em.scope.update((id(e), stored) for e in stash[2])
    em.emit(f"out[{_flat_out(shape, full_idx)}] = {em.value(k.expr, full_idx)}")


def _cumsum_body(em: _Emitter, k: Kernel):
    nd, axis = len(k.out_shape), k.axis
    em.open_loops([d for d in range(nd) if d != axis])
    acc = em.fresh("acc")
    em.emit(f"{acc} = {_reduce_init(Op.SUM, compute_dtype(k.out_dtype))}")
    em.open_loops([axis])
    idx = [f"i{d}" for d in range(nd)]
    em.emit(f"{acc} += {em.value(k.exprs['source'], idx)}")
    em.emit(f"out[{_flat_out(k.out_shape, idx)}] = {acc}")


def _scatter_body(em: _Emitter, k: Kernel):
    nd = len(k.out_shape)
    idx = [f"i{d}" for d in range(nd)]
    indent = em.indent
    em.open_loops(range(nd))
    em.emit(f"out[{_flat_out(k.out_shape, idx)}] = {em.value(k.exprs['base'], idx)}")
    em.indent, em.scope = indent, {}
    em.loop_shape = k.full_shape     # the index/source shape
    em.open_loops(range(nd))
    position = em.in_range(k.exprs["index"], em.value(k.exprs["index"], idx), k.out_shape[k.axis], k.axis)
    if position is None:                # (an empty axis: every index is an error, nothing is written)
        return
    target = list(idx)
    target[k.axis] = position
    em.emit(f"out[{_flat_out(k.out_shape, target)}] += {em.value(k.exprs['source'], idx)}")
