"""Adam and AdamW (torch's single-tensor update, exactly; AdamW is Adam with decoupled weight decay)."""
from __future__ import annotations

import lazytorch
from lazytorch.optim.optimizer import Optimizer, check_unsupported


class Adam(Optimizer):
    """Adam (torch.optim.Adam), with amsgrad, maximize, L2 or decoupled weight decay.

    The step count lives in `state['step']` (a float32 0-d tensor, as torch's); the bias corrections
    it implies are computed in Python and enter the graph as 0-d buffers.
    """

    runtime_hyperparameters = {"lr": None, "betas": None}

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 amsgrad: bool = False, *, foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None, decoupled_weight_decay: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_unsupported(differentiable, capturable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update_group(self, group, params, scalar):
        eps, weight_decay, amsgrad = group["eps"], group["weight_decay"], group["amsgrad"]
        for p in params:
            dtype = p.dtype
            grad = -p.grad if group["maximize"] else p.grad
            state = self.state[p]
            if not state:
                state["step"] = lazytorch.tensor(0.0, dtype=lazytorch.float32)
                state["exp_avg"] = lazytorch.zeros_like(p)
                state["exp_avg_sq"] = lazytorch.zeros_like(p)
                if amsgrad:
                    state["max_exp_avg_sq"] = lazytorch.zeros_like(p)
            # the count and the bias corrections stay tensors (computed in float64, as Python would):
            # no `.item()`, so a step traced by `lazytorch.jit` replays with the current count
            step = state["step"] + 1
            state["step"].copy_(step)
            step = step.double()
            param = p
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    param = p * scalar.of(group, "decay", _decay, dtype)
                else:
                    grad = grad + p * scalar("weight_decay", weight_decay, dtype)
            exp_avg = state["exp_avg"].lerp(grad, scalar.of(group, "one_minus_beta1", _one_minus_beta1, dtype))
            exp_avg_sq = (state["exp_avg_sq"] * scalar.of(group, "beta2", _beta2, dtype)).addcmul(
                grad, grad, value=scalar.of(group, "one_minus_beta2", _one_minus_beta2, dtype))
            bias_correction1 = 1 - scalar.of(group, "beta1", _beta1, lazytorch.float64) ** step
            bias_correction2 = 1 - scalar.of(group, "beta2", _beta2, lazytorch.float64) ** step
            step_size = scalar.of(group, "lr", _lr, lazytorch.float64) / bias_correction1   # never baked in
            bias_correction2_sqrt = bias_correction2 ** 0.5
            second = exp_avg_sq
            if amsgrad:
                second = lazytorch.maximum(state["max_exp_avg_sq"], exp_avg_sq)
                state["max_exp_avg_sq"].copy_(second)
            denom = second.sqrt() / bias_correction2_sqrt.to(dtype) + scalar("eps", eps, dtype)
            state["exp_avg"].copy_(exp_avg)
            state["exp_avg_sq"].copy_(exp_avg_sq)
            p.copy_(param.addcdiv(exp_avg, denom, value=(-step_size).to(dtype)))


# the values read from the param group at every step (`Optimizer.runtime_hyperparameters`)
def _lr(group) -> float:
    return float(group["lr"])


def _decay(group) -> float:
    return 1 - float(group["lr"]) * group["weight_decay"]


def _beta1(group) -> float:
    return group["betas"][0]


def _beta2(group) -> float:
    return group["betas"][1]


def _one_minus_beta1(group) -> float:
    return 1 - group["betas"][0]


def _one_minus_beta2(group) -> float:
    return 1 - group["betas"][1]


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): Adam whose weight decay shrinks the parameters directly."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
