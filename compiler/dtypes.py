"""Element types of the IR and PyTorch's type-promotion rules.

A `DType` is a small immutable record; the module-level instances (`float32`, `int64`, ...) are
the only ones that exist, so they compare by identity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class DType:
    name: str
    np_dtype: np.dtype
    category: int          # 0 bool, 1 integer, 2 floating: the order of torch's promotion categories
    itemsize: int
    # a field rather than a property: it is read several times for every op built
    is_floating_point: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "is_floating_point", self.category == 2)

    @property
    def is_signed(self) -> bool:
        return self.name != "uint8" and self.category > 0

    def __repr__(self) -> str:
        # Printed as PyTorch prints it: lazytorch is used as `import lazytorch as torch`, and users
        # compare logs and doctests with PyTorch's.
        return f"torch.{self.name}"

    def __reduce__(self):
        return (by_name, (self.name,))


bool_ = DType("bool", np.dtype(np.bool_), 0, 1)
uint8 = DType("uint8", np.dtype(np.uint8), 1, 1)
int8 = DType("int8", np.dtype(np.int8), 1, 1)
int16 = DType("int16", np.dtype(np.int16), 1, 2)
int32 = DType("int32", np.dtype(np.int32), 1, 4)
int64 = DType("int64", np.dtype(np.int64), 1, 8)
float16 = DType("float16", np.dtype(np.float16), 2, 2)
float32 = DType("float32", np.dtype(np.float32), 2, 4)
float64 = DType("float64", np.dtype(np.float64), 2, 8)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NUMPY = {d.np_dtype: d for d in ALL}


def by_name(name: str) -> DType:
    return _BY_NAME[name]


def from_numpy(np_dtype) -> DType:
    """The DType of a numpy dtype; raises TypeError for types PyTorch has no equivalent of."""
    try:
        return _BY_NUMPY[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{np.dtype(np_dtype).type.__name__}. The only supported "
            "types are: float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


def promote_types(a: DType, b: DType) -> DType:
    """torch.promote_types for two tensor dtypes."""
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == 1:
        if uint8 in (a, b):
            other = b if a is uint8 else a
            # uint8 with a signed type: the smallest signed type holding both (torch's table).
            return int16 if other is int8 else other
        return a if a.itemsize > b.itemsize else b
    return a if a.itemsize > b.itemsize else b


def result_type(dim_dtypes: list[DType], zero_dim_dtypes: list[DType], scalar_categories: list[int],
                default_float: DType) -> DType:
    """torch.result_type: three priority groups, each only counts if it is of a higher category.

    Tensors with dimensions decide the type; 0-d tensors override them only with a higher category
    (bool < integer < floating), and Python scalars (`scalar_categories`: 0 bool, 1 int, 2 float)
    only with a higher category still, becoming the default float dtype or int64.
    """
    dtype = None
    for group in (dim_dtypes, zero_dim_dtypes):
        if not group:
            continue
        promoted = group[0]
        for other in group[1:]:
            promoted = promote_types(promoted, other)
        if dtype is None or promoted.category > dtype.category:
            dtype = promoted
    for category in scalar_categories:
        if dtype is None or category > dtype.category:
            dtype = (bool_, int64, default_float)[category]
    return dtype
