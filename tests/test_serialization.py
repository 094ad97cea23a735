"""lazytorch.save / lazytorch.load: round trips of every supported type, atomic writes, and clear
errors (never code execution) for files that are not checkpoints."""
import io
import json
import math
import os
import pickle
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import lazytorch as lt
from lazytorch import serialization


def _round_trip(obj, tmp_path):
    path = tmp_path / "ckpt.lt"
    lt.save(obj, path)
    return lt.load(path)


def _assert_tensor_equal(a, b):
    assert isinstance(a, lt.Tensor) and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(force=True), b.numpy(force=True))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8",
                                   "bool"])
def test_tensor_dtypes(dtype, tmp_path):
    values = np.array([[0, 1, 2], [3, 250, 1]]).astype(dtype)
    t = lt.tensor(values)
    _assert_tensor_equal(_round_trip(t, tmp_path), t)


def test_tensor_shapes_views_and_lazy_values(tmp_path):
    base = lt.arange(12, dtype=lt.float32).reshape(3, 4)
    cases = {"scalar": lt.tensor(2.5), "empty": lt.zeros(0, 3), "transposed": base.t(), "sliced": base[1:, ::2],
             "lazy": base * 2 + 1}
    loaded = _round_trip(cases, tmp_path)
    assert list(loaded) == list(cases)
    for k in cases:
        _assert_tensor_equal(loaded[k], cases[k])


def test_requires_grad_parameters_and_shared_tensors(tmp_path):
    w = lt.randn(2, 3, requires_grad=True)
    loaded = _round_trip({"w": w, "again": w, "plain": w.detach()}, tmp_path)
    assert loaded["w"] is loaded["again"] and loaded["w"].requires_grad and loaded["w"].is_leaf
    assert not loaded["plain"].requires_grad
    _assert_tensor_equal(loaded["w"], w)
    nn = pytest.importorskip("lazytorch.nn")
    p = nn.Parameter(lt.ones(2))
    loaded = _round_trip([p], tmp_path)[0]
    assert isinstance(loaded, nn.Parameter) and loaded.requires_grad


def test_nested_containers(tmp_path):
    obj = {"none": None, "flags": [True, False], "ints": (0, -3, 2 ** 62), "floats": [0.1, -1e300, math.inf, -math.inf],
           "s": "héllo", 7: {"nested": [(1, "a"), {"x": lt.ones(2)}]}, (1, "k"): "tuple key", 2.5: "float key",
           "od": OrderedDict([("b", 1), ("a", 2)]), "np": np.arange(4.0), "npscalar": np.float32(1.5)}
    loaded = _round_trip(obj, tmp_path)
    assert list(loaded) == list(obj)
    assert loaded["none"] is None and loaded["flags"] == [True, False] and loaded["ints"] == (0, -3, 2 ** 62)
    assert loaded["floats"] == [0.1, -1e300, math.inf, -math.inf] and loaded["s"] == "héllo"
    assert type(loaded[7]["nested"][0]) is tuple and loaded[(1, "k")] == "tuple key" and loaded[2.5] == "float key"
    assert type(loaded["od"]) is OrderedDict and list(loaded["od"]) == ["b", "a"]
    np.testing.assert_array_equal(loaded["np"], np.arange(4.0))
    assert loaded["npscalar"] == 1.5 and isinstance(loaded["npscalar"], float)
    assert math.isnan(_round_trip(math.nan, tmp_path))
    _assert_tensor_equal(loaded[7]["nested"][1]["x"], lt.ones(2))


def test_module_state_dict(tmp_path):
    nn = pytest.importorskip("lazytorch.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("lazytorch.nn.Linear not available")
    lt.manual_seed(0)
    model = nn.Linear(3, 2)
    state = model.state_dict()
    loaded = _round_trip(state, tmp_path)
    assert type(loaded) is OrderedDict and list(loaded) == list(state)
    other = nn.Linear(3, 2)
    other.load_state_dict(loaded)
    x = lt.randn(4, 3)
    np.testing.assert_array_equal(other(x).detach().numpy(), model(x).detach().numpy())


def test_optimizer_and_scheduler_state_resume_identically(tmp_path):
    """Checkpoint mid-run, restore into fresh objects, continue: the same as never stopping."""
    rng = np.random.default_rng(0)
    init = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(8)]

    def make(values):
        p = lt.tensor(values, requires_grad=True)
        opt = lt.optim.Adam([p], lr=0.05, amsgrad=True)
        return p, opt, lt.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 5], gamma=0.5)

    def run(p, opt, scheduler, steps):
        for g in steps:
            p.grad = lt.tensor(g)
            opt.step()
            scheduler.step()

    p, opt, scheduler = make(init)
    run(p, opt, scheduler, grads)
    expected = p.detach().numpy().copy()

    p, opt, scheduler = make(init)
    run(p, opt, scheduler, grads[:4])
    lt.save({"model": {"p": p}, "optim": opt.state_dict(), "sched": scheduler.state_dict(), "epoch": 4},
            tmp_path / "ckpt.lt")
    ckpt = lt.load(tmp_path / "ckpt.lt")
    assert isinstance(ckpt["optim"]["state"][0]["step"], lt.Tensor) and ckpt["epoch"] == 4
    assert isinstance(scheduler.state_dict()["milestones"], Counter)
    p2, opt2, scheduler2 = make(ckpt["model"]["p"].detach().numpy())
    opt2.load_state_dict(ckpt["optim"])
    scheduler2.load_state_dict(ckpt["sched"])
    run(p2, opt2, scheduler2, grads[4:])
    np.testing.assert_array_equal(p2.detach().numpy(), expected)


def test_reduce_lr_on_plateau_state_with_infinity(tmp_path):
    opt = lt.optim.SGD([lt.zeros(1, requires_grad=True)], lr=0.1)
    state = lt.optim.lr_scheduler.ReduceLROnPlateau(opt).state_dict()
    assert state["best"] == math.inf
    assert _round_trip(state, tmp_path) == state


def test_file_objects_and_options(tmp_path):
    buffer = io.BytesIO()
    lt.save({"a": lt.arange(3)}, buffer)
    buffer.seek(0)
    _assert_tensor_equal(lt.load(buffer, map_location="cpu", weights_only=False)["a"], lt.arange(3))
    lt.save([lt.ones(1)], str(tmp_path / "s.lt"))
    assert lt.load(str(tmp_path / "s.lt"), map_location={"cpu": "cpu"})[0].device == lt.device("cpu")
    with pytest.raises(TypeError, match="map_location"):
        lt.load(tmp_path / "s.lt", map_location=lambda storage, loc: storage)


def test_format_is_documented_zip_of_npy_and_json(tmp_path):
    lt.save({"w": lt.ones(2, 3)}, tmp_path / "c.lt")
    with zipfile.ZipFile(tmp_path / "c.lt") as archive:
        manifest = json.loads(archive.read(serialization.MANIFEST))
        assert manifest["format"] == "lazytorch-checkpoint" and manifest["version"] == 1
        entry = manifest["root"]["items"][0][1]
        assert entry["type"] == "tensor" and entry["dtype"] == "float32" and entry["shape"] == [2, 3]
        with archive.open(entry["data"]) as f:
            np.testing.assert_array_equal(np.lib.format.read_array(f, allow_pickle=False), np.ones((2, 3)))


def test_save_is_atomic_when_the_writer_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.lt"
    lt.save({"v": lt.tensor([1.0, 2.0])}, path)
    before = path.read_bytes()
    calls = []
    real_write = serialization._write_array

    def failing_write(archive, name, array):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real_write(archive, name, array)

    monkeypatch.setattr(serialization, "_write_array", failing_write)
    with pytest.raises(OSError, match="simulated"):
        lt.save({"a": lt.zeros(100), "b": lt.zeros(100), "c": lt.zeros(100)}, path)
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.lt"]          # no temporary file left behind
    assert lt.load(path)["v"].tolist() == [1.0, 2.0]


def test_unsupported_objects_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="cannot save an object of type object"):
        lt.save({"x": object()}, tmp_path / "x.lt")
    with pytest.raises(TypeError, match="dict keys"):
        lt.save({frozenset(): 1}, tmp_path / "x.lt")
    assert os.listdir(tmp_path) == []


def _bad(tmp_path, data: bytes):
    path = tmp_path / "bad.lt"
    path.write_bytes(data)
    return path


def _zip_bytes(entries: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_garbage_truncated_and_foreign_files_raise_clear_errors(tmp_path):
    with pytest.raises(RuntimeError, match="is not a lazytorch checkpoint"):
        lt.load(_bad(tmp_path, b"definitely not a checkpoint"))
    with pytest.raises(lt.serialization.CheckpointError, match="not a lazytorch checkpoint"):
        lt.load(_bad(tmp_path, b""))
    lt.save({"a": lt.ones(50), "b": [1, 2]}, tmp_path / "good.lt")
    good = (tmp_path / "good.lt").read_bytes()
    for cut in (len(good) // 3, len(good) - 10):
        with pytest.raises(RuntimeError, match="not a lazytorch checkpoint|corrupt or truncated"):
            lt.load(_bad(tmp_path, good[:cut]))
    corrupted = bytearray(good)
    corrupted[good.index(b"\x93NUMPY") + 200] ^= 0xFF          # a byte of the tensor's data: CRC mismatch
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        lt.load(_bad(tmp_path, bytes(corrupted)))
    with pytest.raises(RuntimeError, match="has no lazytorch_checkpoint.json"):
        lt.load(_bad(tmp_path, _zip_bytes({"hello.txt": b"hi"})))
    with pytest.raises(RuntimeError, match="written by torch.save"):
        lt.load(_bad(tmp_path, _zip_bytes({"archive/data.pkl": b"\x80\x04N.", "archive/version": b"3"})))
    for manifest in (b"{not json", json.dumps({"format": "other"}).encode(),
                     json.dumps({"format": "lazytorch-checkpoint", "version": 99, "root": None}).encode(),
                     json.dumps({"format": "lazytorch-checkpoint", "version": 1, "root": {"type": "eval"}}).encode(),
                     json.dumps({"format": "lazytorch-checkpoint", "version": 1,
                                 "root": {"type": "tensor", "data": "tensors/9.npy", "dtype": "float32",
                                          "shape": [1]}}).encode()):
        with pytest.raises(RuntimeError, match="corrupt or truncated"):
            lt.load(_bad(tmp_path, _zip_bytes({serialization.MANIFEST: manifest})))
    with pytest.raises(FileNotFoundError):
        lt.load(tmp_path / "missing.lt")


class _Exploit:
    def __reduce__(self):
        return (open, ("/tmp/lazytorch_pwned_by_checkpoint", "w"))


def test_pickled_payloads_are_never_executed(tmp_path):
    """An object array inside the .npy would need unpickling: it is refused, and nothing runs."""
    target = "/tmp/lazytorch_pwned_by_checkpoint"
    if os.path.exists(target):
        os.unlink(target)
    npy = io.BytesIO()
    np.save(npy, np.array([_Exploit()], dtype=object), allow_pickle=True)
    manifest = {"format": "lazytorch-checkpoint", "version": 1,
                "root": {"type": "tensor", "data": "tensors/0.npy", "dtype": "object", "shape": [1]}}
    data = _zip_bytes({"tensors/0.npy": npy.getvalue(), serialization.MANIFEST: json.dumps(manifest)})
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        lt.load(_bad(tmp_path, data))
    with pytest.raises(RuntimeError):
        lt.load(_bad(tmp_path, pickle.dumps(_Exploit())))
    assert not os.path.exists(target)
