"""Flatten parameters into one vector and back."""
from __future__ import annotations

from typing import Iterable

from lazytorch._grad_mode import no_grad
from lazytorch._movement import cat
from lazytorch._tensor import Tensor


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p._assign(vec[offset:offset + n].reshape(p.shape).detach(), "copy_")
            offset += n
