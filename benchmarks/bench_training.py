"""Training-step benchmarks: lazytorch (eager and `@lazytorch.jit`) side by side with PyTorch eager
and torch.compile, in one process, interleaved, medians and ratios.

    python benchmarks/bench_training.py                  # everything (torch.compile takes a while)
    python benchmarks/bench_training.py --no-compile     # skip torch.compile
    python benchmarks/bench_training.py --quick          # fewer rounds

Workloads:
  W4  the seed's linear regression step: nn.Linear(1, 1), 100 samples, SGD lr 0.01, MSE written out
      (`zero_grad(); y_pred = model(x); loss = (y_pred - y).pow(2).mean(); loss.backward(); step()`)
  W3  MLP 784-512-512-10, batch 128, ReLU, SGD lr 0.01, cross-entropy, one step
  W6  an exponential moving average of a 10M-parameter model (three Linear layers), written with
      `.data`: `e.data.mul_(0.999).add_(p.data, alpha=0.001)` for every parameter

Besides steady-state step times it measures, in fresh subprocesses, the cold compile of the jitted
MLP step (empty cache directory) and the time a new process with a warm disk cache takes to reach
its first completed step (from the first line of the script, and as wall time of the process).

Targets (issue #5): W4 jit >= 20x faster than torch eager; W3 jit no slower than torch eager;
cold compile of W3 <= 5 s; warm-cache first step <= 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# the steps, written once against a torch-like module `T` (torch or lazytorch)

def linreg_step(T, jit=None):
    T.manual_seed(0)
    x = T.rand(100, 1) * 10
    y = 3 * x + 2 + T.randn(100, 1) * 0.5
    model = T.nn.Linear(1, 1)
    optimizer = T.optim.SGD(model.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad()
        y_pred = model(x)
        loss = (y_pred - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss

    return jit(step) if jit else step


def mlp_step(T, jit=None, batch=128):
    T.manual_seed(0)
    model = T.nn.Sequential(T.nn.Linear(784, 512), T.nn.ReLU(), T.nn.Linear(512, 512), T.nn.ReLU(),
                            T.nn.Linear(512, 10))
    optimizer = T.optim.SGD(model.parameters(), lr=0.01)
    x = T.randn(batch, 784)
    y = T.randint(0, 10, (batch,))
    loss_fn = T.nn.functional.cross_entropy

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    fn = jit(step) if jit else step
    return lambda: fn(x, y)


def ema_step(T, jit=None):
    """An EMA of a 10M-parameter model's weights, written with `.data` as training scripts do."""
    T.manual_seed(0)
    def make():
        return T.nn.Sequential(T.nn.Linear(2048, 2048), T.nn.Linear(2048, 2048), T.nn.Linear(2048, 800))
    model, ema = make(), make()
    params, averages = list(model.parameters()), list(ema.parameters())

    def step():
        for e, p in zip(averages, params):
            e.data.mul_(0.999).add_(p.data, alpha=0.001)

    if jit:
        return jit(step)
    if T.__name__ == "lazytorch":               # eager: the update is computed at the next realization
        from lazytorch._tensor import realize_tensors
        return lambda: (step(), realize_tensors([]))
    return step


WORKLOADS = {"W4 linreg": linreg_step, "W3 mlp": mlp_step, "W6 ema": ema_step}


def _variants(compile_torch: bool):
    import torch
    import lazytorch
    import lazytorch.nn.functional  # noqa: F401  (lazytorch.nn is not imported by lazytorch itself)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    out = {"torch eager": (torch, None), "lazytorch eager": (lazytorch, None), "lazytorch jit": (lazytorch, lazytorch.jit)}
    if compile_torch:
        out["torch.compile"] = (torch, torch.compile)
    return out


def _sync(result):
    """Make sure the step's work is done (lazytorch eager realizes in optimizer.step() already)."""
    return result


def measure(workload: str, compile_torch: bool, rounds: int) -> dict:
    make = WORKLOADS[workload]
    steps, warm = {}, {}
    for name, (T, jit) in _variants(compile_torch).items():
        start = time.perf_counter()
        step = make(T, jit)
        step()
        warm[name] = time.perf_counter() - start
        for _ in range(3):
            step()
        steps[name] = step
    # steps per round: ~20 ms of the slowest variant
    per_round = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        dt = time.perf_counter() - start
        per_round[name] = max(1, min(2000, int(0.02 / max(dt, 1e-7))))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            n = per_round[name]
            start = time.perf_counter()
            for _ in range(n):
                _sync(step())
            times[name].append((time.perf_counter() - start) / n)
    med = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    return {"median_s": med, "first_call_s": warm}


# ---------------------------------------------------------------------------------------------
# fresh processes: cold compile and warm start

def child(kind: str) -> None:
    """Run in a subprocess: build the jitted step, time its first call, print JSON."""
    import lazytorch
    import lazytorch.nn.functional  # noqa: F401
    imported = time.perf_counter()
    make = WORKLOADS["W3 mlp" if kind == "mlp" else "W4 linreg"]
    step = make(lazytorch, lazytorch.jit)
    built = time.perf_counter()
    cpu = time.process_time()
    step()
    first = time.perf_counter()
    cpu = time.process_time() - cpu
    for _ in range(3):
        step()
    print(json.dumps({"import_s": imported - _START, "first_step_s": first - built, "first_step_cpu_s": cpu,
                      "to_first_step_s": first - _START, "counters": lazytorch.debug.counters()}))


def fresh_process(kind: str, cache: str) -> dict:
    env = dict(os.environ, LAZYTORCH_CACHE_DIR=cache)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", kind], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def fresh_processes() -> None:
    """Cold compile (empty cache) and warm start (same cache, new process) of both jitted steps."""
    with tempfile.TemporaryDirectory() as cache:
        for kind in ("mlp", "linreg"):
            cold = fresh_process(kind, cache)
            warm = fresh_process(kind, cache)
            print(f"{kind}: cold first jit step {cold['first_step_s']:.2f} s (cpu {cold['first_step_cpu_s']:.2f} s) "
                  f"(kernel_compiles {cold['counters']['kernel_compiles']}); warm cache: first step "
                  f"{warm['first_step_s']:.3f} s, script start -> first step done {warm['to_first_step_s']:.3f} s "
                  f"(import {warm['import_s']:.3f} s), process wall {warm['process_wall_s']:.3f} s, "
                  f"kernel_compiles {warm['counters']['kernel_compiles']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS/OpenMP/torch threads for every library (default: each library's own)")
    parser.add_argument("--only", choices=["W4", "W3", "W6"], help="one workload (no fresh-process timings)")
    args = parser.parse_args()
    if args.threads:
        # before numpy/scipy/torch are imported: OpenBLAS (numpy's, scipy's) and OpenMP read these once
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.child:
        child(args.child)
        return
    rounds = 7 if args.quick else 21
    workloads = [w for w in WORKLOADS if not args.only or w.startswith(args.only)]
    if not args.only:
        fresh_processes()
    print(f"threads: {args.threads or 'library defaults'}")
    for workload in workloads:
        result = measure(workload, not args.no_compile, rounds)
        med = result["median_s"]
        base = med["torch eager"]
        print(f"\n{workload}: median per step ({rounds} interleaved rounds)")
        for name, t in med.items():
            print(f"  {name:16s} {t * 1e6:10.1f} us   torch eager / this = {base / t:6.2f}x   "
                  f"(first call {result['first_call_s'][name]:.2f} s)")


if __name__ == "__main__":
    main()
