"""Adagrad with lr decay, weight decay, an initial accumulator and maximize (torch's update, exactly)."""
from __future__ import annotations

import lazytorch
from lazytorch.optim.optimizer import Optimizer, check_unsupported


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad). As in torch, the state exists from construction on.

    The step count lives in `state['step']` (a float32 0-d tensor, as torch's); the decayed lr it
    implies is computed from it with tensor ops, and the hyperparameters enter as 0-d buffers.
    """

    runtime_hyperparameters = {"lr": None}

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        check_unsupported(differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group) -> None:
        state = self.state[p]
        state["step"] = lazytorch.tensor(0.0, dtype=lazytorch.float32)
        state["sum"] = lazytorch.full_like(p, group["initial_accumulator_value"])

    def _update_group(self, group, params, scalar):
        lr_decay, eps, weight_decay = group["lr_decay"], group["eps"], group["weight_decay"]
        for p in params:
            dtype = p.dtype
            if not self.state[p]:    # a parameter added by add_param_group
                self._init_state(p, group)
            state = self.state[p]
            # the count and the decayed lr stay tensors (the lr in float64, as torch's Python float):
            # no `.item()`, so a step traced by `lazytorch.jit` replays with the current count
            step = state["step"] + 1
            state["step"].copy_(step)
            grad = -p.grad if group["maximize"] else p.grad
            if weight_decay != 0:
                grad = grad + p * scalar("weight_decay", weight_decay, dtype)
            neg_clr = scalar.of(group, "neg_lr", _neg_lr, lazytorch.float64)
            if lr_decay != 0:
                neg_clr = neg_clr / ((step.double() - 1) * scalar("lr_decay", lr_decay, lazytorch.float64) + 1)
            state_sum = state["sum"].addcmul(grad, grad)
            state["sum"].copy_(state_sum)
            std = state_sum.sqrt() + scalar("eps", eps, dtype)
            p.copy_(p.addcdiv(grad, std, value=neg_clr.to(dtype)))


def _neg_lr(group) -> float:
    """Read from the param group at every step (`Optimizer.runtime_hyperparameters`)."""
    return -float(group["lr"])
