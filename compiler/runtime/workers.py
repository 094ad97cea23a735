"""Compile workers: other processes compile some of a driver's segments while this one compiles the
rest, and send back object code.

Numba compiles one function at a time and holds the GIL while it does, so the segments of a large
driver (a CNN training step has ~17) compile one after the other in one process. Each segment is an
independent `cfunc` whose object code `compiler.runtime.native` can load, so they can as well be
compiled elsewhere: a worker is a long-lived Python process running `_serve` (started at the first
driver worth sharing, ~0.7 s to import Numba, then reused) that reads jobs on stdin and answers on
stdout. It is started with `-c`, not `-m compiler.runtime.workers`: importing the `compiler` package
imports this module, and runpy then warns (RuntimeWarning, on the user's terminal) that the module
it is about to run as `__main__` is already imported. Its stderr (Numba's warnings, a crash) is
shown only with LAZYTORCH_DEBUG>=1; a failure is logged by the calling process either way. The calling process gives each worker a share of the segments (largest first,
to whoever has the fewest lines), compiles its own share meanwhile, and waits.

`LAZYTORCH_COMPILE_WORKERS` sets the number of workers (default: CPUs - 1, at most 4; 0 turns them
off). A worker that fails or dies only costs time: its share is compiled here.
"""
from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from compiler.runtime.counters import debug_level, log

MIN_LINES = 200
"""Drivers shorter than this are compiled in this process (a worker's round trip costs more)."""

Job = tuple[str, list[tuple[str, str]]]         # (module header, [(function name, its source)])
COMMAND = ["-c", "from compiler.runtime.workers import _serve; _serve()"]
"""A worker's Python arguments (see the module docstring for why not `-m`)."""


def compile_functions(header: str, functions: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """Compile each `cfunc` definition after `header` (imports, helpers); (symbol, object code) each."""
    from compiler.runtime import native
    namespace: dict = {"__name__": "lazytorch_driver"}
    exec(compile(header, "<driver header>", "exec"), namespace)
    out = []
    for name, text in functions:
        exec(compile(text, f"<driver {name}>", "exec"), namespace)
        out.append(native.emit(namespace[name]))
    return out


def compile_shared(header: str, functions: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """`compile_functions`, with shares of the work given to the compile workers when worthwhile."""
    lines = [text.count("\n") for _, text in functions]
    workers = _pool(len(functions)) if sum(lines) >= MIN_LINES else []
    if not workers:
        return compile_functions(header, functions)
    shares: list[list[int]] = [[] for _ in range(len(workers) + 1)]      # the last share is ours
    loads = [0] * len(shares)
    loads[-1] = MIN_LINES // 2                     # a worker's job has its round trip to pay
    for k in sorted(range(len(functions)), key=lambda k: -lines[k]):
        least = min(range(len(shares)), key=lambda s: loads[s])
        shares[least].append(k)
        loads[least] += lines[k]
    results: dict[int, tuple[str, bytes]] = {}
    threads = []
    for worker, share in zip(workers, shares):
        if share:
            job = (header, [functions[k] for k in share])
            thread = threading.Thread(target=worker.run, args=(job, share, results), daemon=True)
            thread.start()
            threads.append(thread)
    for k, compiled in zip(shares[-1], compile_functions(header, [functions[k] for k in shares[-1]])):
        results[k] = compiled
    for thread in threads:
        thread.join()
    missing = [k for k in range(len(functions)) if k not in results]
    if missing:                                    # a worker failed: compile its share here
        for k, compiled in zip(missing, compile_functions(header, [functions[k] for k in missing])):
            results[k] = compiled
    return [results[k] for k in range(len(functions))]


# ---------------------------------------------------------------------------------------------
# the workers, seen from this process

class _Worker:
    def __init__(self):
        root = str(Path(__file__).resolve().parents[2])         # the directory holding `compiler`
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            [sys.executable, *COMMAND], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if debug_level() >= 1 else subprocess.DEVNULL)
        self.lock = threading.Lock()

    def run(self, job: Job, share: list[int], results: dict) -> None:
        """Send `job`; put each function's (symbol, code) in `results` under its index in `share`."""
        with self.lock:
            try:
                _send(self.process.stdin, job)
                answer = _receive(self.process.stdout)
            except (OSError, EOFError, pickle.PickleError, struct.error) as e:
                log(1, f"compile worker {self.process.pid} failed ({type(e).__name__}); compiling here")
                return
        if isinstance(answer, str):
            log(1, f"compile worker {self.process.pid}: {answer[:300]}")
            return
        for k, compiled in zip(share, answer):
            results[k] = compiled

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        try:
            self.process.stdin.close()          # the worker's loop ends at end of input
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
        self.process.stdout.close()


_workers: list[_Worker] = []


def worker_count() -> int:
    try:
        return max(0, int(os.environ["LAZYTORCH_COMPILE_WORKERS"]))
    except (KeyError, ValueError):
        return min(4, (os.cpu_count() or 1) - 1)


def _pool(segments: int) -> list[_Worker]:
    """Up to `segments - 1` running workers (started on first use)."""
    wanted = min(worker_count(), segments - 1)
    _workers[:] = [w for w in _workers if w.alive()]
    while len(_workers) < wanted:
        try:
            _workers.append(_Worker())
        except OSError as e:
            log(1, f"could not start a compile worker ({e}); compiling here")
            break
        if len(_workers) == 1:
            atexit.register(_stop_all)
    return _workers[:wanted]


def _stop_all() -> None:
    for worker in _workers:
        worker.stop()


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("compile worker closed its output")
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


# ---------------------------------------------------------------------------------------------
# the workers, seen from inside one

def _serve() -> None:
    """A worker's loop: compile each job from stdin, answer with the object code (or an error)."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                     # anything printed while compiling stays off the pipe
    while True:
        try:
            job: Optional[Job] = _receive(source)
        except EOFError:
            return
        try:
            answer = compile_functions(*job)
        except Exception as e:
            answer = f"{type(e).__name__}: {e}"
        _send(sink, answer)
