"""Finite-difference checks of gradients: `gradcheck` and `gradgradcheck`, as torch.autograd's.

Every probe calls the function on fresh copies of the inputs - perturbed ones for the numerical
Jacobian, the original ones with a one-hot cotangent for a row of the analytical Jacobian - and
realizes the outputs together with their vector-Jacobian products. The probes thus all build the
same graph up to data: the compiler plans and compiles it once and every further probe is a cache
hit, so a check costs one compilation however many elements the inputs have.
"""
from __future__ import annotations

import numpy as np

from lazytorch._grad_mode import enable_grad
from lazytorch._tensor import Tensor, realize_tensors, tensor
from lazytorch.autograd._engine import _as_tuple, grad


class GradcheckError(RuntimeError):
    """Raised by gradcheck when the analytical and numerical Jacobians differ."""


class _Probe:
    """Evaluates `func` on given input values, with the VJP of given output cotangents."""

    def __init__(self, func, inputs: tuple):
        self.func = func
        self.inputs = inputs
        self.diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
        self.values = [np.array(x._value()) if isinstance(x, Tensor) else None for x in inputs]
        outputs, self.differentiable = self._call(self.values)
        self.out_values = [np.zeros(o.shape, o.dtype.np_dtype) for o in outputs]

    def _call(self, values):
        args = [tensor(v, requires_grad=i in self.diff) if v is not None else x
                for i, (x, v) in enumerate(zip(self.inputs, values))]
        with enable_grad():
            outputs = _as_tuple(self.func(*args))
        for k, o in enumerate(outputs):
            if not isinstance(o, Tensor):
                raise TypeError(f"gradcheck: output {k} of the function is a {type(o).__name__}, not a Tensor")
        differentiable = [k for k, o in enumerate(outputs) if o.requires_grad]
        self._args = args
        return outputs, differentiable

    def run(self, values, cotangents):
        """(output values, gradient value per differentiable input) at `values`; the gradients are
        those of sum_k <output k, cotangents[k]>."""
        outputs, differentiable = self._call(values)
        grads = ()
        if differentiable and self.diff:
            grads = grad([outputs[k] for k in differentiable], [self._args[i] for i in self.diff],
                         [tensor(cotangents[k]) for k in differentiable], allow_unused=True)
        realize_tensors(list(outputs) + [g for g in grads if g is not None])
        out = [np.array(o._node.realized) for o in outputs]
        grad_values = [np.zeros_like(self.values[i]) for i in self.diff]
        for j, g in enumerate(grads):
            if g is not None:
                grad_values[j] = np.array(g._node.realized)
        return out, grad_values

    def perturbed(self, i: int, direction: np.ndarray, eps: float):
        """(f(x + eps d) - f(x - eps d)) / 2 eps, per output, moving input i along d."""
        ends = []
        for sign in (1, -1):
            values = list(self.values)
            values[i] = (values[i] + sign * eps * direction).astype(values[i].dtype)
            ends.append(self.run(values, self.out_values)[0])
        return [(plus.astype(np.float64) - minus) / (2 * eps) for plus, minus in zip(*ends)]


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool = False, **torch_only_flags) -> bool:
    """Compare the gradients of `func` at `inputs` with central finite differences.

    Checks every (output, input) pair where the input requires grad: the whole Jacobian, or with
    `fast_mode=True` the product u^T J v for random u and v. Use float64 inputs: float32 finite
    differences are too coarse. Returns True, or raises GradcheckError (returns False when
    `raise_exception=False`). torch's flags for forward-mode and batched checks are accepted and
    ignored (`torch_only_flags`).
    """
    probe = _Probe(func, _as_tuple(inputs))
    if not probe.diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of them "
                         "have requires_grad=True.")
    try:
        (_check_fast if fast_mode else _check_full)(probe, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _compare(analytical, numerical, k: int, i: int, atol: float, rtol: float) -> None:
    if not np.allclose(analytical, numerical, rtol=rtol, atol=atol):
        raise GradcheckError(f"Jacobian mismatch for output {k} with respect to input {i},\n"
                             f"numerical:{numerical}\nanalytical:{analytical}\n")


def _check_full(probe: _Probe, eps: float, atol: float, rtol: float) -> None:
    outs = probe.out_values
    # numerical[k][j]: d output k / d input diff[j], one column per input element
    numerical = [[np.zeros((o.size, probe.values[i].size)) for i in probe.diff] for o in outs]
    for j, i in enumerate(probe.diff):
        for e in range(probe.values[i].size):
            unit = np.zeros(probe.values[i].size)
            unit[e] = 1.0
            for k, d in enumerate(probe.perturbed(i, unit.reshape(probe.values[i].shape), eps)):
                numerical[k][j][:, e] = d.reshape(-1)
    # analytical: one row (a VJP with a one-hot cotangent) per output element
    for k, o in enumerate(outs):
        analytical = [np.zeros((o.size, probe.values[i].size)) for i in probe.diff]
        if k in probe.differentiable:
            for e in range(o.size):
                cotangents = [np.zeros_like(x) for x in outs]
                cotangents[k].reshape(-1)[e] = 1
                for j, g in enumerate(probe.run(probe.values, cotangents)[1]):
                    analytical[j][e] = g.reshape(-1)
        for j, i in enumerate(probe.diff):
            _compare(analytical[j], numerical[k][j], k, i, atol, rtol)


def _check_fast(probe: _Probe, eps: float, atol: float, rtol: float) -> None:
    rng = np.random.default_rng(0)
    outs = probe.out_values
    v = [rng.standard_normal(probe.values[i].shape) for i in probe.diff]
    u = [rng.standard_normal(o.shape) for o in outs]
    directional = [probe.perturbed(i, v[j], eps) for j, i in enumerate(probe.diff)]
    for k, o in enumerate(outs):
        cotangents = [np.zeros_like(x) for x in outs]
        cotangents[k] = u[k].astype(o.dtype)
        grads = probe.run(probe.values, cotangents)[1] if k in probe.differentiable else \
            [np.zeros_like(probe.values[i]) for i in probe.diff]
        for j, i in enumerate(probe.diff):
            analytical = float(np.sum(grads[j] * v[j]))
            numerical = float(np.sum(directional[j][k] * u[k]))
            _compare(analytical, numerical, k, i, atol, rtol)


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, fast_mode: bool = False, **torch_only_flags) -> bool:
    """Check second derivatives: gradcheck of the VJP of `func` (built with `create_graph=True`),
    w.r.t. the inputs and the cotangents `grad_outputs` (random ones when not given)."""
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        outputs = [o for o in _as_tuple(func(*inputs)) if o.requires_grad]
        grad_outputs = tuple(tensor(rng.standard_normal(o.shape).astype(o.dtype.np_dtype), requires_grad=True)
                             for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)

    def first_derivatives(*args):
        xs, cotangents = args[:n], args[n:]
        outputs = [o for o in _as_tuple(func(*xs)) if o.requires_grad]
        wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = grad(outputs, wrt, cotangents, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode)
