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


def debug_run(level: str, tmp_path: Path) -> str:
    script = tmp_path / "debug_script.py"
    script.write_text("import lazytorch as lt\nx = lt.ones(7, 3)\nprint((x * 3 + 1).sum(1).tolist())\n")
    env = dict(os.environ, LAZYTORCH_DEBUG=level, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_debug_levels(tmp_path):
    one = debug_run("1", tmp_path)
    # (a kernel run on its own is a native function named after it: n_k_loop_...)
    assert re.search(r"(compiled|loaded) (n_)?k_loop_\w+ in [\d.]+ ms \((cache miss|disk cache hit)\)", one)
    assert "launch" not in one
    two = debug_run("2", tmp_path)
    assert re.search(r"launch k_loop_\w+: [\d.]+ us, [\d.]+ GB/s", two)
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
