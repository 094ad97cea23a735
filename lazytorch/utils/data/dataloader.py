"""`DataLoader` and the default collate functions (torch.utils.data's, single-process).

Batches are made in the main process: `num_workers`, `pin_memory`, `timeout` and the other
multiprocessing options are accepted for compatibility and change nothing. Batching is cheap:
a `TensorDataset` (or a Subset of one) gives each batch as one gather per tensor, and
`default_collate` stacks per-sample tensors with one numpy copy, not a graph of slices.
"""
from __future__ import annotations

import collections.abc
import copy
import itertools
import re
from typing import Any, Callable, Optional

import numpy as np

import lazytorch
from lazytorch._tensor import Tensor
from lazytorch.utils.data.dataset import IterableDataset
from lazytorch.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler

_STRING_OR_OBJECT = re.compile(r"[SaUO]")     # numpy dtype codes default_collate refuses
_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _stack(tensors: list[Tensor]) -> Tensor:
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(t.shape)} at entry {i}")
    if any(t.requires_grad for t in tensors):
        return lazytorch.stack(tensors)
    lazytorch.realize(*tensors)     # lazy samples are computed together, in one program
    return lazytorch._creation._from_owned_array(np.stack([t._value() for t in tensors]))


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, as torch's default_collate.

    Tensors and numpy arrays are stacked along a new first dimension; Python floats become a
    float64 tensor and ints an int64 tensor (bools a bool tensor); strings stay a list; dicts,
    namedtuples, tuples and lists are collated field by field (tuples give lists, as in torch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack(batch)
    if isinstance(elem, np.ndarray):
        if _STRING_OR_OBJECT.search(elem.dtype.str) is not None:
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        return lazytorch._creation._from_owned_array(np.stack(batch))
    if isinstance(elem, (np.bool_, np.number)):
        return lazytorch._creation._from_owned_array(np.array(batch))
    if isinstance(elem, float):
        return lazytorch._creation._from_owned_array(np.array(batch, dtype=np.float64))
    if isinstance(elem, bool) and all(isinstance(x, bool) for x in batch):
        return lazytorch._creation._from_owned_array(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return lazytorch._creation._from_owned_array(np.array(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):    # namedtuple
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(x) != size for x in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        collated = [default_collate(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return collated
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """What the loader gives when batching is off (batch_size=None): numpy arrays and numpy
    scalars become tensors, inside any dicts, namedtuples and sequences; the rest is unchanged."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _STRING_OR_OBJECT.search(data.dtype.str) else lazytorch.as_tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return lazytorch.as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        converted = [default_convert(d) for d in data]
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    return data


class DataLoader:
    """Iterates over a dataset in batches (torch.utils.data.DataLoader, loading in the main process).

    `shuffle=True` draws a new order every epoch from `generator`, or, without one, from a
    generator seeded by the default generator (so `lazytorch.manual_seed` fixes it).
    """

    def __init__(self, dataset, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Optional[Callable] = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor: Optional[int] = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        self.dataset = dataset
        self.num_workers = num_workers
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self._auto_collation = batch_sampler is not None or (self._iterable and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    def __iter__(self):
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self._fetch(indices) for indices in self.batch_sampler)

    def _iter_stream(self):
        samples = iter(self.dataset)
        if self.batch_size is None:
            yield from (self.collate_fn(s) for s in samples)
            return
        while True:
            batch = list(itertools.islice(samples, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)

    def _fetch(self, indices: list[int]):
        if self.collate_fn is default_collate:
            gather = getattr(self.dataset, "_collated_batch", None)
            batch = gather(indices) if gather is not None else None
            if batch is not None:
                return batch
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.collate_fn(self.dataset.__getitems__(indices))
        return self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)
