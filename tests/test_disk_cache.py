"""Tests for the persistent compile cache (`lazytorch.cache`, compiler/runtime/diskcache.py).

Subprocesses share a cache directory: the second compiles nothing (and runs its jitted step without
importing Numba); damaged entries (truncated or garbled sources, Numba index and data files, driver
object files) are detected and compiled again, never a crash; four processes can fill one cache at
once.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import lazytorch as lt
from compiler.codegen import numba_cpu
from compiler.ir.kernel import KLoad, KOp, Kernel
from compiler.ir.ops import Op
from compiler.passes.views import ShapeTracker
from compiler import dtypes

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json
import sys
import lazytorch as lt
x = lt.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
w = lt.tensor([[0.5], [-0.25]], requires_grad=True)

@lt.jit
def step():
    w.grad = None
    loss = ((x @ w - 1) ** 2).mean()
    loss.backward()
    with lt.no_grad():
        w.sub_(0.1 * w.grad)
    return loss

losses = [step().item() for _ in range(4)]
numba_for_jit = "numba" in sys.modules
eager = (x * 3).sum(0).tolist()         # a kernel run on its own: native too
numba_for_eager = "numba" in sys.modules
big = lt.ones(256, 256).contiguous() * lt.tensor(2.0)
parallel = float((big * 3).sum(1)[0])   # a kernel with parallel loops: a Numba dispatcher
print(json.dumps({"losses": losses, "eager": eager, "parallel": parallel, "numba_for_jit": numba_for_jit,
                  "numba_for_eager": numba_for_eager, "counters": lt.debug.counters()}))
"""


def run_child(cache: Path, tmp_path: Path, name: str = "child.py") -> dict:
    script = tmp_path / name
    script.write_text(CHILD)
    env = dict(os.environ, LAZYTORCH_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    env.pop("LAZYTORCH_CACHE", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def cache_files(cache: Path, pattern: str) -> list[Path]:
    return sorted(p for p in cache.rglob(pattern) if p.is_file())


def test_second_process_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = run_child(cache, tmp_path)
    assert first["counters"]["kernel_compiles"] >= 1
    second = run_child(cache, tmp_path)
    assert second["counters"]["kernel_compiles"] == 0
    assert second["counters"]["disk_cache_hits"] == first["counters"]["kernel_compiles"]
    assert second["losses"] == first["losses"] and second["eager"] == first["eager"] == [27.0, 36.0]
    assert second["parallel"] == first["parallel"] == 256 * 6.0
    # the driver's and the small kernel's object code is loaded without Numba (on Linux; elsewhere
    # Numba compiles them); the parallel kernel needs Numba's threading layer
    assert second["numba_for_jit"] is second["numba_for_eager"] is (not sys.platform.startswith("linux"))


DAMAGES = ["truncate .py", "garble .nbi", "truncate .nbi", "garble .nbc", "truncate .nbc", "garble .o",
           "truncate .o"]


def test_damaged_entries_are_compiled_again(tmp_path):
    """Each kind of damage in turn, on one cache: the next process gets the right results, compiling
    again what it could not trust; after that the cache is whole again."""
    cache = tmp_path / "cache"
    good = run_child(cache, tmp_path)
    rng = np.random.default_rng(0)
    for damage in DAMAGES:
        how, suffix = damage.split()
        files = cache_files(cache, "d_program_*" + suffix) if suffix == ".py" else \
            cache_files(cache, "*" + suffix)
        assert files, f"no {suffix} files in the cache"
        for path in files:
            data = bytearray(path.read_bytes())
            if how == "truncate":
                data = data[: len(data) // 2]
            else:                               # same length, bytes in the middle overwritten
                middle = len(data) // 2
                data[middle:middle + 64] = rng.integers(0, 256, min(64, len(data) - middle),
                                                        dtype=np.uint8).tobytes()
            path.write_bytes(bytes(data))
        again = run_child(cache, tmp_path)
        assert again["losses"] == good["losses"], damage
        # a damaged source is rewritten; Numba stamps entries with a hash of the source's content,
        # and a driver's object code names its source's hash, so the compiled code stays valid.
        # Damaged index, data or object files are compiled again (the kernel's or the driver's).
        assert again["counters"]["kernel_compiles"] == (0 if suffix == ".py" else len(files)), damage
    healed = run_child(cache, tmp_path)
    assert healed["counters"]["kernel_compiles"] == 0


def test_four_processes_fill_one_cache(tmp_path):
    cache = tmp_path / "cache"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, LAZYTORCH_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["losses"] == results[0]["losses"] for r in results)
    after = run_child(cache, tmp_path)
    assert after["counters"]["kernel_compiles"] == 0
    assert not cache_files(cache, "*.tmp*") and not cache_files(cache, ".tmp-*")


def test_info_prune_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYTORCH_CACHE_DIR", str(tmp_path / "c"))
    directory = lt.cache.directory()
    assert directory.parent == tmp_path / "c"
    # a kernel no other test makes: written to this directory and compiled
    assert (lt.ones(13, 7) * 1.25).sum(1).tolist() == [1.25 * 7] * 13
    info = lt.cache.info()
    assert info["entries"] >= 1 and info["bytes"] > 0 and info["directory"] == str(directory)
    assert lt.cache.prune(max_bytes=0) > 0
    assert lt.cache.info()["entries"] == 0
    assert (lt.ones(13, 7) * 1.5).sum(1).tolist()[0] == 1.5 * 7      # compiling again works
    lt.cache.clear()
    assert not any((tmp_path / "c").iterdir())


def test_keys_name_versions_and_helpers(monkeypatch):
    import llvmlite
    import numba
    name = lt.cache.directory().name
    assert numba.__version__ in name and llvmlite.__version__ in name
    kernel = Kernel("loop", (4,), dtypes.float32, [dtypes.float32], full_shape=(4,),
                    expr=KOp(Op.EXP, (KLoad(0, ShapeTracker.contiguous((4,)), dtypes.float32),), dtypes.float32))
    fn_name, source = numba_cpu.generate(kernel)
    assert source.startswith(f"# helpers: {numba_cpu.HELPERS_HASH}")
    monkeypatch.setattr(numba_cpu, "HELPERS_HASH", "0" * 16)     # an edited fastmath.py
    other_name, other_source = numba_cpu.generate(kernel)
    assert other_name != fn_name and other_source.startswith("# helpers: " + "0" * 16)


def test_cache_disabled_is_private(monkeypatch):
    monkeypatch.setenv("LAZYTORCH_CACHE", "0")
    assert f"nocache-{os.getpid()}" in str(lt.cache.root())
