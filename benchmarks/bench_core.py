"""Core speed: numpy, PyTorch eager, torch.compile and lazytorch on the same workloads, as ratios.

    python benchmarks/bench_core.py              # full sizes (4M elements, 4096x1024), ~1 min + torch.compile
    python benchmarks/bench_core.py --quick      # small sizes, few repeats, no torch.compile: a smoke run

Workloads:
  W1  x * sigmoid(1.702 * x) * w + 0.5 on 4M float32 elements (a fused elementwise chain)
  W2  softmax over the rows of a 4096x1024 float32 matrix (one row kernel: max, sum of exp, write)
  W5  graph building: a chain of 1,000 small ops (+ and *) on a 16-element tensor, per op
  W6  embedding lookup: 8,192 ids into a 50,000x128 float32 table
  W7  gather along dim 1: 4096x1024 float32, 256 positions per row
  W8  cross-entropy forward + backward: 4096x1000 float32 logits, 4096 labels
  (W6-W8 index with data: each kernel checks every index it uses, see docs/ARCHITECTURE.md)

lazytorch is timed as a user sees it per call: build the lazy graph from input tensors made once
(as the torch columns' are; `lazytorch.tensor`, which owns its memory: `from_numpy` memory that the
caller can still write is computed at each op that reads it, see README "Differences from PyTorch")
and realize it. Its first call compiles (reported separately, in
a fresh kernel cache unless --warm-cache); later calls find the schedule by the graph's structure
and only launch the kernel. `--breakdown` splits that steady-state call into its parts.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))          # common.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # lazytorch from a checkout

import common  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, 5 repeats, no torch.compile (smoke run)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for Numba and torch (default: all CPUs)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per implementation (default 30; quick 5)")
    p.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (it compiles for ~15 s per workload)")
    p.add_argument("--warm-cache", action="store_true", help="use the usual kernel cache instead of a fresh one")
    p.add_argument("--breakdown", action="store_true", help="also split lazytorch's per-call time into its parts")
    p.add_argument("--only", default=None, help="comma-separated workload tags to run (e.g. W6,W7,W8)")
    return p.parse_args(argv)


def workloads(np, lt, torch, quick: bool, use_compile: bool):
    """name -> (implementations, float64 reference, short description)."""
    rng = np.random.default_rng(0)
    n = 1 << 16 if quick else 1 << 22
    rows, cols = (256, 256) if quick else (4096, 1024)
    x = rng.standard_normal(n).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    a = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)

    def np_chain():
        return x * (1 / (1 + np.exp(-1.702 * x))) * w + 0.5          # stays float32 (NEP 50)

    def np_softmax():
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    xt, wt, at = lt.tensor(x), lt.tensor(w), lt.tensor(a)

    def lt_chain():
        return (xt * lt.sigmoid(1.702 * xt) * wt + 0.5).numpy()

    def lt_softmax():
        return lt.softmax(at, -1).numpy()

    chain = {"numpy": np_chain}
    softmax = {"numpy": np_softmax}
    if torch is not None:
        tx, tw, ta = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(a)

        def torch_chain_fn(x, w):
            return x * torch.sigmoid(1.702 * x) * w + 0.5

        def torch_softmax_fn(a):
            return torch.softmax(a, -1)

        chain["torch eager"] = lambda: torch_chain_fn(tx, tw)
        softmax["torch eager"] = lambda: torch_softmax_fn(ta)
        if use_compile:
            compiled_chain, compiled_softmax = torch.compile(torch_chain_fn), torch.compile(torch_softmax_fn)
            chain["torch.compile"] = lambda: compiled_chain(tx, tw)
            softmax["torch.compile"] = lambda: compiled_softmax(ta)
    chain["lazytorch"] = lt_chain
    softmax["lazytorch"] = lt_softmax

    x64, w64, a64 = x.astype(np.float64), w.astype(np.float64), a.astype(np.float64)
    e64 = np.exp(a64 - a64.max(1, keepdims=True))
    return {
        f"W1 x*sigmoid(1.702x)*w+0.5, {n:,} f32": (chain, x64 / (1 + np.exp(-1.702 * x64)) * w64 + 0.5),
        f"W2 softmax rows, {rows}x{cols} f32": (softmax, e64 / e64.sum(1, keepdims=True)),
        **indexing_workloads(np, lt, torch, quick),
    }


def indexing_workloads(np, lt, torch, quick: bool):
    """W6-W8: ops that index with data (each index is bounds-checked in the kernel using it)."""
    rng = np.random.default_rng(2)
    vocab, dim, n_ids = (5000, 64, 1024) if quick else (50000, 128, 8192)
    rows, cols, picks = (256, 256, 64) if quick else (4096, 1024, 256)
    batch, classes = (256, 100) if quick else (4096, 1000)
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    ids = rng.integers(0, vocab, n_ids)
    src = rng.standard_normal((rows, cols)).astype(np.float32)
    pos = rng.integers(0, cols, (rows, picks))
    logits = rng.standard_normal((batch, classes)).astype(np.float32)
    labels = rng.integers(0, classes, batch)

    def np_ce():                 # mean NLL of log-softmax and its gradient w.r.t. the logits
        e = np.exp(logits - logits.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        p[np.arange(batch), labels] -= 1
        return p / batch

    lt_ids, lt_table, lt_src, lt_pos, lt_labels = (lt.tensor(v) for v in (ids, table, src, pos, labels))
    lt_logits = lt.tensor(logits)

    def lt_embedding():
        return lt.nn.functional.embedding(lt_ids, lt_table).numpy()

    def lt_gather():
        return lt_src.gather(1, lt_pos).numpy()

    def lt_ce():
        z = lt_logits.detach().requires_grad_()
        lt.nn.functional.cross_entropy(z, lt_labels).backward()
        return z.grad.numpy()

    embedding = {"numpy": lambda: table[ids]}
    gather = {"numpy": lambda: np.take_along_axis(src, pos, 1)}
    ce = {"numpy": np_ce}
    if torch is not None:
        tt, ti, ts, tp, tz, tl = (torch.from_numpy(a) for a in (table, ids, src, pos, logits, labels))

        def torch_ce():
            z = tz.clone().requires_grad_()
            torch.nn.functional.cross_entropy(z, tl).backward()
            return z.grad

        embedding["torch eager"] = lambda: torch.nn.functional.embedding(ti, tt)
        gather["torch eager"] = lambda: ts.gather(1, tp)
        ce["torch eager"] = torch_ce
    embedding["lazytorch"], gather["lazytorch"], ce["lazytorch"] = lt_embedding, lt_gather, lt_ce
    grad = np_ce().astype(np.float64)
    return {
        f"W6 embedding lookup, {n_ids:,} ids in {vocab:,}x{dim} f32": (embedding, table[ids].astype(np.float64)),
        f"W7 gather dim 1, {rows}x{cols} f32, {picks} per row": (
            gather, np.take_along_axis(src, pos, 1).astype(np.float64)),
        f"W8 cross-entropy forward+backward, {batch}x{classes} f32": (ce, grad),
    }


def graph_building(np, lt, torch, repeats: int) -> dict[str, common.Timing]:
    """W5: per-op cost of a chain of 1,000 small ops (500 x (* then +)) on 16 elements."""
    steps = 500
    data = np.linspace(-1, 1, 16, dtype=np.float32)

    def chain(start):
        y = start
        for _ in range(steps):
            y = y * 0.999
            y = y + 0.001
        return y

    impls = {"numpy": lambda: chain(data)}
    if torch is not None:
        t = torch.from_numpy(data)
        impls["torch eager"] = lambda: chain(t)
    impls["lazytorch (build)"] = lambda: chain(lt.from_numpy(data))
    impls["lazytorch (build+realize)"] = lambda: chain(lt.from_numpy(data)).numpy()
    timings = common.compare(impls, repeats=max(3, repeats // 3), warmup=1)
    for t in timings.values():           # report per op
        t.first /= 2 * steps
        t.times = [s / (2 * steps) for s in t.times]
    return timings


def breakdown(np, lt, compiler, repeats: int, quick: bool) -> list[list[str]]:
    """lazytorch's steady-state call split: build the graph, plan (structural key + cache lookup),
    run the schedule (allocate outputs, launch kernels)."""
    from compiler.runtime.executor import execute
    rng = np.random.default_rng(1)
    n = 1 << 16 if quick else 1 << 22
    rows, cols = (256, 256) if quick else (4096, 1024)
    x, w = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    builders = {
        "W1": lambda: [(lambda xt, wt: xt * lt.sigmoid(1.702 * xt) * wt + 0.5)(lt.from_numpy(x), lt.from_numpy(w))],
        "W2": lambda: [lt.softmax(lt.from_numpy(a), -1)],
    }
    out = []
    for name, build in builders.items():
        lt.realize(*build())                       # compiled (and cached) before timing
        parts = {"build": [], "plan": [], "run": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            tensors = build()
            t1 = time.perf_counter()
            schedule, order = compiler.plan([t.node for t in tensors])
            t2 = time.perf_counter()
            execute(schedule, order)
            t3 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[key].append(dt)
        kernels = sum(1 for s in schedule.steps if hasattr(s, "kernel"))
        out.append([name, str(kernels)] + [f"{statistics.median(v) * 1e6:.0f}" for v in parts.values()])
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 30)
    cache = None if args.warm_cache else common.use_cold_cache()
    import numpy as np

    import compiler
    import lazytorch as lt
    torch = common.optional_torch()
    threads = common.set_threads(args.threads)
    use_compile = torch is not None and not args.no_torch_compile and not args.quick
    print(f"# bench_core: {common.machine_note()}; threads {threads}; repeats {repeats}; "
          f"kernel cache {'fresh: ' + cache if cache else 'warm (usual directory)'}")
    if torch is not None:
        print(f"# numpy {np.__version__}, torch {torch.__version__}, lazytorch {lt.__version__}")

    header = ["workload", "implementation", "median ms", "min ms", "vs numpy", "vs torch eager",
              "first call s", "max abs err"]
    rows = []
    only = args.only.split(",") if args.only else None
    for wname, (impls, reference) in workloads(np, lt, torch, args.quick, use_compile).items():
        if only and wname.split()[0] not in only:
            continue
        lt.debug.reset_counters()
        timings = common.compare(impls, repeats)
        compiles = lt.debug.counters()["kernel_compiles"]
        base_np = timings["numpy"].median
        base_torch = timings["torch eager"].median if "torch eager" in timings else None
        for name, fn in impls.items():
            t = timings[name]
            err = float(np.max(np.abs(np.asarray(fn(), dtype=np.float64) - reference)))
            first = f"{t.first:.2f}" + (f" ({compiles} kernel compiles)" if name == "lazytorch" else "")
            rows.append([wname, name, common.fmt_ms(t.median), common.fmt_ms(t.min),
                         common.fmt_ratio(base_np / t.median),
                         common.fmt_ratio(base_torch / t.median if base_torch else None), first, f"{err:.1e}"])

    per_op = graph_building(np, lt, torch, repeats) if not only or "W5" in only else {}
    base_np = per_op["numpy"].median if per_op else None
    base_torch = per_op["torch eager"].median if "torch eager" in per_op else None
    for name, t in per_op.items():
        rows.append(["W5 graph building, 1,000 small ops (µs per op)", name, f"{t.median * 1e6:.2f} µs",
                     f"{t.min * 1e6:.2f} µs", common.fmt_ratio(base_np / t.median),
                     common.fmt_ratio(base_torch / t.median if base_torch else None), "—", "—"])
    print()
    print(common.markdown_table(header, rows))
    print("\nvs numpy / vs torch eager: that implementation's speed-up (median time of the baseline divided "
          "by its median time; >1 is faster). max abs err: against float64 numpy.")
    if args.breakdown:
        print("\nlazytorch steady-state call, median µs per part:\n")
        print(common.markdown_table(["workload", "kernels", "build graph", "plan (key + lookup)",
                                     "run (alloc + launch)"], breakdown(np, lt, compiler, repeats, args.quick)))


if __name__ == "__main__":
    main()
