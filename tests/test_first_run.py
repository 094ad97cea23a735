"""What a new user meets on a first run: one notice while a cold cache compiles (never on a warm
one), no internal warning on the terminal, and the examples' plot (axes labelled, legend clear).

The runs are subprocesses (a fresh process is what a user starts) on small inputs."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

NOTICE_SCRIPT = """\
from compiler.runtime import notice
notice.THRESHOLD_S = 0.05          # announce even a short compile: the test's program is small
import lazytorch as torch
from tqdm import tqdm

model = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)


@torch.jit
def step(x):
    opt.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    return loss


x = torch.ones(5, 3)
for _ in tqdm(range(3), desc="training"):
    loss = step(x)
print("loss", loss.item())
"""


def run(args, cache: Path, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), LAZYTORCH_CACHE_DIR=str(cache), **env)
    environment.pop("LAZYTORCH_DEBUG", None)
    environment.update(env)
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environment,
                         timeout=600, cwd=cache.parent)
    assert out.returncode == 0, out.stderr
    return out


def test_compile_notice_once_on_a_cold_cache_never_on_a_warm_one(tmp_path):
    script = tmp_path / "first_run.py"
    script.write_text(NOTICE_SCRIPT)
    cache = tmp_path / "cache"
    cold = run([str(script)], cache).stderr
    # one line, on a line of its own: written above tqdm's bar, not into the middle of its line
    notices = re.findall(r"(?:^|[\r\n])(\[lazytorch\] [^\r\n]*)\n", cold)
    assert len(notices) == 1 and cold.count("[lazytorch]") == 1, cold
    line = notices[0]
    assert line.startswith("[lazytorch] compiling jitted function step: one program of "), line
    assert re.search(r"\d+ kernels? and \d+ matmuls? in \d+ segments?", line), line
    assert f"later runs load the compiled code from the disk cache {cache}" in line, line
    assert "LAZYTORCH_DEBUG=0 hides this line" in line
    warm = run([str(script)], cache).stderr
    assert "[lazytorch]" not in warm, warm
    quiet = run([str(script)], tmp_path / "cache2", LAZYTORCH_DEBUG="0").stderr
    assert "[lazytorch]" not in quiet, quiet


def test_compile_worker_starts_without_a_warning(tmp_path):
    # started as `python -m compiler.runtime.workers`, a worker printed runpy's RuntimeWarning (the
    # module is imported by its own package first) onto the user's terminal, inside the progress bar
    from compiler.runtime import workers
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="default")
    out = subprocess.run([sys.executable, *workers.COMMAND], input=b"", capture_output=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == b"" and out.stdout == b"", out.stderr
