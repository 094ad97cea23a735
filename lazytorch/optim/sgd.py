"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch's update, exactly)."""
from __future__ import annotations

import lazytorch
from lazytorch.optim.optimizer import Optimizer, check_unsupported


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD).

    With momentum, torch starts the buffer at the first gradient itself (so dampening applies from
    the second step). Here the first step instead starts from a zero buffer with momentum 0 and
    gradient weight 1 - the same value, bit for bit - so that every step has the same graph
    structure and the second step compiles nothing new.
    """

    runtime_hyperparameters = {"lr": None, "momentum": lambda momentum: momentum != 0}

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_unsupported(differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _update_group(self, group, params, scalar):
        momentum, dampening, weight_decay = group["momentum"], group["dampening"], group["weight_decay"]
        for p in params:
            grad = -p.grad if group["maximize"] else p.grad
            if weight_decay != 0:
                grad = grad + p * scalar("weight_decay", weight_decay, p.dtype)
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = lazytorch.zeros_like(p)
                    keep, take = scalar("buffer_keep", 0.0, p.dtype), scalar("grad_take", 1.0, p.dtype)
                else:
                    keep = scalar.of(group, "buffer_keep", _momentum, p.dtype)
                    take = scalar("grad_take", 1 - dampening, p.dtype)
                new_buf = buf * keep + grad * take
                buf.copy_(new_buf)
                grad = grad + new_buf * scalar.of(group, "momentum", _momentum, p.dtype) if group["nesterov"] \
                    else new_buf
            p.copy_(p + grad * scalar.of(group, "neg_lr", _neg_lr, p.dtype))


def _momentum(group) -> float:
    return group["momentum"]


def _neg_lr(group) -> float:
    return -float(group["lr"])
