"""Tests for `lazytorch.explain`, `dump_kernels`, the LAZYTORCH_DEBUG log and `python -m lazytorch`."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lazytorch as lt
import lazytorch.nn as nn
import lazytorch.optim as optim

ROOT = Path(__file__).resolve().parents[1]
IR_LINE = re.compile(r"^  %\d+ = [a-z_]+( %\d+(, %\d+)*)?.* : [a-z0-9]+\[[0-9, ]*\]")


def make_step():
    lt.manual_seed(0)
    x = lt.rand(100, 1) * 10
    y = 3 * x + 2
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.01)

    @lt.jit
    def step():
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        return loss

    return step


@pytest.fixture(scope="module")
def report():
    step = make_step()
    step()
    return step.explain()


def test_report_ir_sections_and_grad_origins(report):
    text = str(report)
    lines = [line for line in text.splitlines() if line.startswith("  %")]
    assert lines and all(IR_LINE.match(line) for line in lines), [l for l in lines if not IR_LINE.match(l)][:3]
    for section in ("inputs", "forward", "backward", "update"):
        assert f"-- {section}" in text
    assert "'model.weight'" in text and "closure variable 'x'" in text
    # gradient nodes name the forward node and the VJP rule they came from
    # (the weight's: x @ w.T differentiated through the transpose, as one product (w.T's cotangent)^T)
    assert re.search(r"# grad of PERMUTE input 0 \(rule: permute\)", text)
    assert "-> model.weight.grad" in text and "-> model.weight" in text and "-> result 0" in text
    sections = {row["section"] for row in report.nodes}
    assert {"input", "forward", "backward", "update"} <= sections


def test_report_fusion_groups_and_kernels(report):
    text = str(report)
    assert "boundary: matmul is a BLAS call" in text
    assert all(row["reason"] for row in report.steps)
    kernel = report.kernels[0]
    assert kernel.source.startswith("# helpers: ") and f"def {kernel.name}(" in kernel.source
    assert kernel.inputs and kernel.output
    assert "define" in kernel.llvm()
    assert re.search(r"\b(mov|vmov|add|ret)", kernel.asm())
    assert "@numba.cfunc" in report.driver_source
    data = report.to_dict()
    json.dumps(data, default=str)
    assert data["kernels"][0]["name"] == kernel.name


def test_dump_writes_runnable_kernels(report, tmp_path):
    paths = report.dump(tmp_path)
    assert len(paths) == len(report.kernels) and (tmp_path / "report.txt").exists()
    out = subprocess.run([sys.executable, str(paths[0])], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "GB/s" in out.stdout and "checksum" in out.stdout
    files = lt.dump_kernels(tmp_path / "all")
    assert len(files) >= len(report.kernels)


def test_explain_a_plain_function_and_a_tensor():
    w = lt.ones(4, 3, requires_grad=True)

    def loss_fn(x):
        loss = (x @ w).relu().sum()
        loss.backward()
        return loss

    report = lt.explain(loss_fn, lt.ones(2, 4))
    assert "backward" in str(report) and report.kernels
    assert w.grad is None                                 # explained, not run
    t = (lt.ones(3) * 2).exp().sum()
    r = lt.explain(t)
    assert "exp" in str(r) and len(r.kernels) == 1
    assert "already computed" in lt.explain(lt.ones(2).realize()).title


def debug_run(level: str, tmp_path: Path, cache=None) -> str:
    script = tmp_path / "debug_script.py"
    script.write_text("import lazytorch as lt\nx = lt.ones(7, 3)\nprint((x * 3 + 1).sum(1).tolist())\n"
                      "print((lt.ones(512, 512) * 3 + 1).tolist()[0][0])\n")
    env = dict(os.environ, LAZYTORCH_DEBUG=level, PYTHONPATH=str(ROOT))
    if cache is not None:
        env["LAZYTORCH_CACHE_DIR"] = str(cache)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_debug_levels(tmp_path):
    one = debug_run("1", tmp_path)
    # (a kernel run on its own is a native function named after it: n_k_loop_...)
    assert re.search(r"(compiled|loaded) (n_)?k_loop_\w+ in [\d.]+ ms \((cache miss|disk cache hit)\)", one)
    assert "launch" not in one
    # a cold cache: each kernel's first launch compiles it, and the launch's time leaves that out
    two = debug_run("2", tmp_path, cache=tmp_path / "cold")
    compiles = [float(ms) for ms in re.findall(r"compiled (?:n_)?k_loop_\w+ in ([\d.]+) ms \(cache miss\)", two)]
    launches = re.findall(r"launch k_loop_\w+: ([\d.]+) us(, [\d.]+ GB/s)?\n", two)
    assert len(compiles) == len(launches) == 2, two
    for compile_ms, (launch_us, _) in zip(compiles, launches):
        assert float(launch_us) < compile_ms * 1000 / 4, two
    # bandwidth only where a launch moves enough memory for it to mean something: 7x3 floats do not,
    # the 512x512 map (a parallel kernel, run through its Numba dispatcher) does
    assert launches[0][1] == "" and launches[1][1].startswith(", "), two
    assert "0.00 GB/s" not in two
    three = debug_run("3", tmp_path)
    assert re.search(r"source of (n_)?k_loop_", three) and re.search(r"@numba\.(njit|cfunc)", three)


def test_cli_explain(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import lazytorch as torch\n"
        "import lazytorch.nn as nn\n"
        "torch.manual_seed(0)\n"
        "x = torch.rand(100, 1) * 10\n"
        "y = 3 * x + 2\n"
        "model = nn.Linear(1, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "@torch.jit\n"
        "def step():\n"
        "    opt.zero_grad()\n"
        "    loss = (model(x) - y).pow(2).mean()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "    return loss\n"
        "for _ in range(3):\n"
        "    step()\n"
        "print('trained', step().item())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "lazytorch", "explain", str(script)], capture_output=True,
                         text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "trained" in out.stdout
    assert "== jitted function step ==" in out.stdout and "-- kernel k_loop_" in out.stdout
    assert "boundary:" in out.stdout


CLI_SCRIPT = """\
import sys
import lazytorch as torch


def train():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.ones(8, 4), torch.zeros(8, 2)

    @torch.jit
    def step():
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    return model


model = train()
for _ in range(2):
    out = (model(torch.ones(3, 4)) * 2).relu().sum()
    print("result", out.item())
sys.exit(3)
"""


def test_cli_explain_local_jitted_function_eager_kernels_and_sys_exit(tmp_path):
    # `step` is defined inside train() and gone when the report is printed; the script then runs
    # eager kernels and ends with sys.exit(3): all of it is reported, then the script's code returned
    script = tmp_path / "local_train.py"
    script.write_text(CLI_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "lazytorch", "explain", str(script)], capture_output=True,
                         text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    report = out.stdout
    assert len(re.findall(r"^result ", report, re.M)) == 2 and "##### lazytorch explain" in report
    assert "== jitted function train.<locals>.step ==" in report and "no jitted function ran" not in report
    assert "-- kernel k_loop_" in report
    # the kernels run outside the jitted function, in the order they ran, each with the line that
    # built its output, its boundary reason, and its launches
    eager = report[report.index("-- kernels run outside jitted functions"):]
    kernels = re.findall(r"^\[(\d+)\] (k_\w+): output", eager, re.M)
    assert [int(k) for k, _ in kernels] == list(range(1, len(kernels) + 1)) and kernels
    assert eager.count("    made at: local_train.py:25  out = (model(torch.ones(3, 4)) * 2).relu().sum()") == len(kernels)
    assert eager.count("    boundary: ") == len(kernels)
    assert re.findall(r"    launches: 2, [\d.]+ us in all \([\d.]+ us each\)", eager)
    assert "Traceback" not in out.stderr and "Warning" not in out.stderr


def test_reports_are_kept_not_the_functions():
    # what the CLI turns on: every specialization's report is kept while the jitted function (and
    # the model and optimizer its closure holds) dies with its scope
    import gc
    import weakref
    from lazytorch import _jit

    before = _jit._reports
    reports = _jit.keep_reports()
    try:
        step = make_step()
        fn = step.__wrapped__
        model = weakref.ref(fn.__closure__[fn.__code__.co_freevars.index("model")].cell_contents)
        step()
        del step, fn
        gc.collect()
        assert model() is None
        assert len(reports) == 1 and reports[0].title == "jitted function make_step.<locals>.step"
        assert "-- kernel k_loop_" in str(reports[0])
    finally:
        _jit._reports = before
