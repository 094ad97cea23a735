"""Reverse-mode autodiff for tensors: `backward`, `grad`, `gradcheck`, `functional`.

Nothing here records a tape. `backward()` finds the tensors to differentiate (leaves that require
grad, and tensors that `retain_grad()`), asks `compiler.autodiff` for gradient *IR*, and stores it
lazily in `.grad`. The gradient graph is therefore compiled together with whatever realizes it
next - typically the optimizer step - as one fused program. With `create_graph=True` the gradients
are ordinary differentiable tensors: second derivatives, gradient penalties and Hessian-vector
products are gradients of gradients.

Differences from PyTorch, all deliberate:
- Calling `backward()` twice through the same graph is allowed and gives the same gradients again
  (accumulating into `.grad`): the graph is immutable IR that is never freed, so there is nothing
  for `retain_graph=True` to keep; `retain_graph` is accepted and has no effect.
- In-place operations never invalidate a graph: a tensor modified after it was used keeps its old
  value in the graphs built before (torch raises "one of the variables needed for gradient
  computation has been modified by an inplace operation"). A leaf updated in place under
  `no_grad` still receives the gradients of graphs built on its older values.
- Custom `autograd.Function`s are not supported: gradients are derived from the IR.
"""
from __future__ import annotations

from lazytorch._grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,
                                  no_grad, set_grad_enabled)
from lazytorch.autograd import functional, grad_mode  # noqa: F401
from lazytorch.autograd._engine import backward, grad
from lazytorch.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["backward", "grad", "gradcheck", "gradgradcheck", "GradcheckError", "functional", "no_grad",
           "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled",
           "Function"]


class Function:
    """Placeholder for custom autograd Functions: lazytorch differentiates IR, not Python code."""

    def __init_subclass__(cls, **kwargs):
        raise NotImplementedError("custom autograd.Function is not supported: lazytorch derives gradients from "
                                  "its IR; write the function with tensor operations instead")
