"""RMSprop with momentum, centering, weight decay and maximize (torch's update, exactly)."""
from __future__ import annotations

import lazytorch
from lazytorch.optim.optimizer import Optimizer, check_unsupported


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop). The step count lives in `state['step']` (a float32 0-d tensor, as
    torch's); the hyperparameters enter as 0-d buffers."""

    runtime_hyperparameters = {"lr": None, "momentum": lambda momentum: momentum > 0}

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False, foreach=None,
                 maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        check_unsupported(differentiable, capturable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group, params, scalar):
        alpha, eps = group["alpha"], group["eps"]
        weight_decay, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
        for p in params:
            dtype = p.dtype
            grad = -p.grad if group["maximize"] else p.grad
            state = self.state[p]
            if not state:
                state["step"] = lazytorch.tensor(0.0, dtype=lazytorch.float32)
                state["square_avg"] = lazytorch.zeros_like(p)
                if momentum > 0:
                    state["momentum_buffer"] = lazytorch.zeros_like(p)
                if centered:
                    state["grad_avg"] = lazytorch.zeros_like(p)
            # counted with a tensor op (no `.item()`), so a step traced by `lazytorch.jit` replays
            state["step"].copy_(state["step"] + 1)
            if weight_decay != 0:
                grad = grad + p * scalar("weight_decay", weight_decay, dtype)
            square_avg = (state["square_avg"] * scalar("alpha", alpha, dtype)).addcmul(
                grad, grad, value=scalar("one_minus_alpha", 1 - alpha, dtype))
            state["square_avg"].copy_(square_avg)
            if centered:
                grad_avg = state["grad_avg"].lerp(grad, scalar("one_minus_alpha", 1 - alpha, dtype))
                state["grad_avg"].copy_(grad_avg)
                avg = square_avg.addcmul(grad_avg, grad_avg, value=scalar("minus_one", -1, dtype)).sqrt()
            else:
                avg = square_avg.sqrt()
            avg = avg + scalar("eps", eps, dtype)
            if momentum > 0:
                buf = (state["momentum_buffer"] * scalar.of(group, "momentum", _momentum, dtype)).addcdiv(grad, avg)
                state["momentum_buffer"].copy_(buf)
                p.copy_(p + buf * scalar.of(group, "neg_lr", _neg_lr, dtype))
            else:
                p.copy_(p.addcdiv(grad, avg, value=scalar.of(group, "neg_lr", _neg_lr, dtype)))


# the values read from the param group at every step (`Optimizer.runtime_hyperparameters`)
def _neg_lr(group) -> float:
    return -float(group["lr"])


def _momentum(group) -> float:
    return group["momentum"]
