"""lazytorch.utils.data against torch.utils.data: batch contents and order, collation of every
sample type, shuffling determinism, samplers, splits and concatenation."""
from collections import namedtuple

import numpy as np
import pytest

import lazytorch as lt
from lazytorch.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
                                  SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, default_collate,
                                  random_split)

torch = pytest.importorskip("torch")
tdata = torch.utils.data

X = np.arange(30, dtype=np.float32).reshape(10, 3)
Y = np.arange(10, dtype=np.int64) * 7
Point = namedtuple("Point", "x y")


def _same(ours, theirs):
    """Structural equality of a lazytorch batch and a torch batch."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, lt.Tensor), type(ours)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            _same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    else:
        assert ours == theirs


def _pair_loaders(our_dataset, their_dataset, **kwargs):
    return list(DataLoader(our_dataset, **kwargs)), list(tdata.DataLoader(their_dataset, **kwargs))


@pytest.mark.parametrize("kwargs", [dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=1),
                                    dict(batch_size=None), dict(batch_size=10)])
def test_tensor_dataset_batches_match_torch(kwargs):
    ours, theirs = _pair_loaders(TensorDataset(lt.tensor(X), lt.tensor(Y)),
                                 tdata.TensorDataset(torch.tensor(X), torch.tensor(Y)), **kwargs)
    _same(ours, theirs)


def test_tensor_dataset_batches_are_one_gather_per_tensor(monkeypatch):
    """A TensorDataset batch is one indexing of each whole tensor (no per-sample slices): a fresh
    buffer, so the training graph never holds the dataset."""
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: pytest.fail("per-sample indexing"))
    lt.manual_seed(0)
    batches = list(DataLoader(TensorDataset(lt.tensor(X), lt.tensor(Y) * 1), batch_size=4, shuffle=True))
    assert all(t.node.op.name == "BUFFER" for batch in batches for t in batch)
    rows = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(rows, X[np.concatenate([b[1].numpy() for b in batches]) // 7])


class Samples(Dataset):
    """One sample of every kind default_collate handles."""

    def __init__(self, lib):
        self.lib = lib

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"int": i, "float": i / 3, "bool": i % 2 == 0, "str": f"s{i}", "np": np.full((2,), i, np.float32),
                "np64": np.float64(i) / 7, "tensor": self.lib.tensor([[i, 2 * i]], dtype=self.lib.float32),
                "tuple": (i, [float(i), i]), "point": Point(i, self.lib.tensor(i))}


def test_default_collate_matches_torch():
    ours, theirs = _pair_loaders(Samples(lt), Samples(torch), batch_size=3)
    _same(ours, theirs)
    assert ours[0]["float"].dtype == lt.float64 and ours[0]["int"].dtype == lt.int64
    assert ours[0]["bool"].dtype == lt.bool


def test_default_collate_direct_and_errors():
    _same(default_collate([lt.ones(2), lt.zeros(2) + 1]), tdata.default_collate([torch.ones(2), torch.zeros(2) + 1]))
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0"):
        default_collate([lt.ones(2), lt.ones(3)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_custom_collate_fn_and_no_batching():
    ds = TensorDataset(lt.tensor(X), lt.tensor(Y))
    sizes = list(DataLoader(ds, batch_size=3, collate_fn=lambda batch: len(batch)))
    assert sizes == [3, 3, 3, 1]
    first = next(iter(DataLoader(Samples(lt), batch_size=None)))
    assert first["np"].dtype == lt.float32 and first["int"] == 0      # default_convert: arrays become tensors


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    ds = TensorDataset(lt.tensor(Y))

    def epoch(loader):
        return [int(v) for (batch,) in loader for v in batch.tolist()]

    lt.manual_seed(3)
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    first, second = epoch(loader), epoch(loader)
    lt.manual_seed(3)
    assert epoch(DataLoader(ds, batch_size=4, shuffle=True)) == first
    assert sorted(first) == sorted(Y.tolist()) and first != second
    g1, g2 = lt.Generator().manual_seed(7), lt.Generator().manual_seed(7)
    assert epoch(DataLoader(ds, batch_size=3, shuffle=True, generator=g1)) == \
        epoch(DataLoader(ds, batch_size=3, shuffle=True, generator=g2))


def test_samplers_and_batch_sampler():
    ds = TensorDataset(lt.tensor(Y))
    ours = list(DataLoader(ds, sampler=[9, 0, 4], batch_size=2))
    _same(ours, list(tdata.DataLoader(tdata.TensorDataset(torch.tensor(Y)), sampler=[9, 0, 4], batch_size=2)))
    batches = [[1, 2], [7], [0, 3, 5]]
    _same(list(DataLoader(ds, batch_sampler=batches)),
          list(tdata.DataLoader(tdata.TensorDataset(torch.tensor(Y)), batch_sampler=batches)))
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert len(BatchSampler(range(5), 2, drop_last=True)) == 2
    g = lt.Generator().manual_seed(0)
    drawn = list(RandomSampler(range(6), replacement=True, num_samples=20, generator=g))
    assert len(drawn) == 20 and set(drawn) <= set(range(6))
    drawn = list(RandomSampler(range(4), num_samples=10))      # two whole permutations, then 2 more
    assert len(drawn) == 10 and sorted(drawn[:8]) == sorted(list(range(4)) * 2) and len(set(drawn[8:])) == 2
    assert sorted(SubsetRandomSampler([3, 5, 8])) == [3, 5, 8]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_sampler=batches, batch_size=2)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        BatchSampler(range(3), 0, False)


def test_lengths():
    ds = TensorDataset(lt.tensor(Y))
    assert len(DataLoader(ds, batch_size=4)) == 3 and len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=None)) == 10


def Stream(lib, n=7):
    """A stream of (tensor, int) samples, an IterableDataset of `lib`."""
    base = IterableDataset if lib is lt else tdata.IterableDataset

    class Stream(base):
        def __iter__(self):
            return iter([(lib.tensor([i, i + 1]), i) for i in range(n)])

        def __len__(self):
            return n

    return Stream()


@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None)])
def test_iterable_dataset_matches_torch(kwargs):
    ours, theirs = _pair_loaders(Stream(lt), Stream(torch), **kwargs)
    _same(ours, theirs)
    assert len(DataLoader(Stream(lt), **kwargs)) == len(tdata.DataLoader(Stream(torch), **kwargs))
    with pytest.raises(ValueError, match="expected unspecified shuffle"):
        DataLoader(Stream(lt), shuffle=True)


def test_subset_concat_and_random_split():
    ds = TensorDataset(lt.tensor(X), lt.tensor(Y))
    sub = Subset(ds, [8, 2, 5])
    _same(list(DataLoader(sub, batch_size=2)),
          list(tdata.DataLoader(tdata.Subset(tdata.TensorDataset(torch.tensor(X), torch.tensor(Y)), [8, 2, 5]),
                                batch_size=2)))
    both = ConcatDataset([sub, ds])
    assert len(both) == 13 and int(both[3][1]) == 0 and int(both[-1][1]) == 63 and int((sub + ds)[0][1]) == 56
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        both[-14]
    _same(list(DataLoader(both, batch_size=5)),
          list(tdata.DataLoader(tdata.ConcatDataset([
              tdata.Subset(tdata.TensorDataset(torch.tensor(X), torch.tensor(Y)), [8, 2, 5]),
              tdata.TensorDataset(torch.tensor(X), torch.tensor(Y))]), batch_size=5)))
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=lt.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [5, 3, 2]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))
    again = random_split(ds, [5, 3, 2], generator=lt.Generator().manual_seed(1))
    assert [p.indices for p in again] == [p.indices for p in parts]
    assert [len(p) for p in random_split(range(7), [0.5, 0.5])] == [4, 3]        # remainder as torch
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 3])
    with pytest.raises(AssertionError, match="Size mismatch"):
        TensorDataset(lt.ones(3), lt.ones(4))
