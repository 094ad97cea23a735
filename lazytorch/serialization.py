"""Checkpoints: `lazytorch.save` / `lazytorch.load`, in a format that loading cannot execute.

Format (version 1): a zip archive (entries stored uncompressed) holding

- `lazytorch_checkpoint.json`: `{"format": "lazytorch-checkpoint", "version": 1, "root": VALUE}`
- `tensors/<n>.npy`: one numpy `.npy` file per distinct tensor or numpy array.

A VALUE is a JSON `null`, `true`/`false`, integer, string or finite float, or an object tagged by
"type": `{"type": "float", "value": "inf" | "-inf" | "nan"}`, `{"type": "list" | "tuple", "items": [VALUE,
...]}`, `{"type": "dict" | "OrderedDict", "items": [[KEY, VALUE], ...]}` (keys are VALUEs too, so
int keys - an optimizer's state - survive), `{"type": "tensor", "data": "tensors/0.npy", "dtype":
"float32", "shape": [2, 3], "device": "cpu", "requires_grad": false, "parameter": false}` and
`{"type": "ndarray", "data": ..., "dtype": ..., "shape": ...}`. A tensor saved twice (the same
object) is one file, and loads as one object again. numpy scalars are saved as Python numbers;
other dict subclasses (Counter, ...) as dicts.

Loading parses JSON and reads `.npy` files with `allow_pickle=False`: nothing in a checkpoint is
ever imported or called, whatever `weights_only` says. Saving to a path is atomic: the archive
is written to a temporary file in the same directory, flushed and fsynced, then renamed over the
destination with `os.replace`, so a crash mid-save leaves any previous checkpoint intact.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any, BinaryIO, Union

import numpy as np

import lazytorch
from compiler import dtypes as dt
from lazytorch._tensor import Tensor, device as _device

FORMAT = "lazytorch-checkpoint"
VERSION = 1
MANIFEST = "lazytorch_checkpoint.json"
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

FileLike = Union[str, os.PathLike, BinaryIO]


class CheckpointError(RuntimeError):
    """A file that is not a readable lazytorch checkpoint (garbage, truncated, or another format)."""


# ---------------------------------------------------------------------------------------------
# save

def save(obj: Any, f: FileLike) -> None:
    """Write `obj` - tensors, numpy arrays, and dict/OrderedDict/list/tuple/str/int/float/bool/None
    containers of them (module and optimizer state dicts) - to a path or a binary file object.

    Writing to a path is atomic (temporary file, fsync, `os.replace`); to a file object it is not.
    """
    encoder = _Encoder()
    root = encoder.encode(obj)
    lazytorch.realize(*encoder.tensors)      # every lazy tensor computed in one program
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "root": root}, allow_nan=False)
    if not isinstance(f, (str, os.PathLike)):
        _write_archive(f, manifest, encoder.arrays)
        return
    path = os.path.abspath(os.fspath(f))
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_archive(out, manifest, encoder.arrays)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


class _Encoder:
    """Turns an object into its JSON manifest value, collecting the arrays to write."""

    def __init__(self):
        self.arrays: list[tuple[str, Any]] = []      # (entry name, Tensor or ndarray)
        self.tensors: list[Tensor] = []
        self._by_id: dict[int, dict] = {}            # a repeated object is written once

    def encode(self, obj) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"type": "float", "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, Tensor):
            return self._array_entry(obj, "tensor", obj.dtype.np_dtype, obj.shape)
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "biuf":
                raise TypeError(f"lazytorch.save: numpy arrays of dtype {obj.dtype} cannot be saved")
            dt.from_numpy(obj.dtype)
            return self._array_entry(obj, "ndarray", obj.dtype, obj.shape)
        if isinstance(obj, np.generic):
            return self.encode(obj.item())
        if isinstance(obj, (list, tuple)):
            kind = "tuple" if isinstance(obj, tuple) else "list"
            return {"type": kind, "items": [self.encode(x) for x in obj]}
        if isinstance(obj, dict):
            kind = "OrderedDict" if isinstance(obj, OrderedDict) else "dict"
            return {"type": kind, "items": [[self._encode_key(k), self.encode(v)] for k, v in obj.items()]}
        raise TypeError(f"lazytorch.save: cannot save an object of type {type(obj).__name__}; checkpoints hold "
                        "tensors, numpy arrays, and dict/list/tuple/str/int/float/bool/None containers of them")

    def _encode_key(self, key) -> Any:
        if key is None or isinstance(key, (bool, int, float, str, tuple, np.generic)):
            return self.encode(key)
        raise TypeError(f"lazytorch.save: dict keys must be str, int, float, bool, None or tuples of them, "
                        f"not {type(key).__name__}")

    def _array_entry(self, obj, kind: str, np_dtype, shape) -> dict:
        if id(obj) in self._by_id:
            return self._by_id[id(obj)]
        name = f"tensors/{len(self.arrays)}.npy"
        entry = {"type": kind, "data": name, "dtype": np.dtype(np_dtype).name, "shape": list(shape)}
        if kind == "tensor":
            entry.update(device=str(obj.device), requires_grad=obj.requires_grad, parameter=_is_parameter(obj))
            self.tensors.append(obj)
        self.arrays.append((name, obj))
        self._by_id[id(obj)] = entry
        return entry


def _is_parameter(t: Tensor) -> bool:
    nn = sys.modules.get("lazytorch.nn")
    return nn is not None and hasattr(nn, "Parameter") and isinstance(t, nn.Parameter)


def _write_archive(out: BinaryIO, manifest: str, arrays: list) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, obj in arrays:
            _write_array(archive, name, obj.numpy(force=True) if isinstance(obj, Tensor) else obj)
        archive.writestr(MANIFEST, manifest)    # last: a writer that fails early leaves no manifest


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(name, "w", force_zip64=True) as entry:
        np.lib.format.write_array(entry, array, allow_pickle=False)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); some platforms cannot open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# load

def load(f: FileLike, map_location=None, weights_only: bool = True, **kwargs) -> Any:
    """Read a checkpoint written by `save`.

    `map_location`: None (each tensor's saved device), a device or device string for all
    tensors, or a dict from saved device strings to devices. `weights_only` is accepted for
    compatibility: loading never unpickles, so it is always weights-only. A file that is not a
    lazytorch checkpoint, or is truncated or corrupt, raises `CheckpointError` (a RuntimeError).
    """
    if kwargs:
        raise TypeError(f"load() got an unexpected keyword argument '{next(iter(kwargs))}'")
    if not (map_location is None or isinstance(map_location, (str, dict, _device))):
        raise TypeError("map_location should be None, a device, a device string or a dict of device strings, "
                        f"not {type(map_location).__name__}")
    label = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file object>")
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as handle:
            return _load_from(handle, label, map_location)
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())
    return _load_from(f, label, map_location)


def _load_from(handle: BinaryIO, label: str, map_location) -> Any:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise CheckpointError(f"{label} is not a lazytorch checkpoint: it is not a zip archive, or it is "
                              f"truncated ({e})") from None
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            if any(n.endswith("data.pkl") for n in names):
                raise CheckpointError(f"{label} was written by torch.save (pickle). lazytorch.load reads only its "
                                      "own pickle-free format: load it with PyTorch and save its tensors as numpy "
                                      "arrays, or re-save it with lazytorch.save")
            raise CheckpointError(f"{label} is not a lazytorch checkpoint: it has no {MANIFEST}")
        try:
            manifest = json.loads(archive.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError("the manifest does not describe a lazytorch checkpoint")
            if manifest.get("version") != VERSION:
                raise ValueError(f"format version {manifest.get('version')!r} is not supported (this lazytorch "
                                 f"reads version {VERSION})")
            return _Decoder(archive, names, map_location).decode(manifest["root"])
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, EOFError, ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"{label} is a corrupt or truncated lazytorch checkpoint: {e}") from None


class _Decoder:
    def __init__(self, archive: zipfile.ZipFile, names: set, map_location):
        self.archive, self.names, self.map_location = archive, names, map_location
        self._loaded: dict[str, Any] = {}

    def decode(self, value) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"unexpected manifest value {value!r}")
        kind = value["type"]
        if kind == "float":
            return _NON_FINITE[value["value"]]
        if kind in ("list", "tuple"):
            items = [self.decode(x) for x in value["items"]]
            return items if kind == "list" else tuple(items)
        if kind in ("dict", "OrderedDict"):
            pairs = ((self.decode(k), self.decode(v)) for k, v in value["items"])
            return OrderedDict(pairs) if kind == "OrderedDict" else dict(pairs)
        if kind in ("tensor", "ndarray"):
            name = value["data"]
            if name not in self._loaded:
                self._loaded[name] = self._read(value) if kind == "ndarray" else self._tensor(value)
            return self._loaded[name]
        raise ValueError(f"unknown manifest entry type {kind!r}")

    def _read(self, entry: dict) -> np.ndarray:
        name = entry["data"]
        if name not in self.names:
            raise KeyError(f"missing array file {name}")
        with self.archive.open(name) as handle:
            array = np.lib.format.read_array(handle, allow_pickle=False)
        if array.dtype.name != entry["dtype"] or list(array.shape) != list(entry["shape"]):
            raise ValueError(f"{name} holds {array.dtype.name}{list(array.shape)}, the manifest says "
                             f"{entry['dtype']}{list(entry['shape'])}")
        return array

    def _tensor(self, entry: dict) -> Tensor:
        array = self._read(entry)
        dt.from_numpy(array.dtype)
        t = lazytorch.from_numpy(array)
        target = self._device(entry.get("device", "cpu"))
        if target != t.device:
            t = t.to(target)
        if entry.get("parameter"):
            from lazytorch import nn
            return nn.Parameter(t, requires_grad=bool(entry.get("requires_grad")))
        if entry.get("requires_grad"):
            t.requires_grad_(True)
        return t

    def _device(self, saved: str) -> "_device":
        location = self.map_location
        if location is None:
            return _device(saved)
        if isinstance(location, dict):
            return _device(location.get(saved, saved))
        return _device(location)
