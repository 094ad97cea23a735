"""The examples run end to end as a user runs them (a fresh process, at a reduced size for the
digits ones), learn, write their plots, and leave nothing on stderr but their progress bar and the
first-run notice: no warning from the library or its compile workers."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Run examples/<name>.py; its stdout. Fails on an error or on any stderr text other than the
    tqdm bar and the first-run notice."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("LAZYTORCH_DEBUG", None)
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], capture_output=True, text=True,
                         env=env, timeout=900, cwd=cwd)
    assert out.returncode == 0, out.stderr
    stray = [piece for piece in re.split(r"[\r\n]", out.stderr)
             if piece.strip() and not piece.startswith(("training:", "[lazytorch] compiling "))]
    assert not stray, out.stderr
    return out.stdout


def test_linear_regression_learns_the_seed_line(tmp_path):
    out = run_example("linear_regression", cwd=tmp_path)
    weight, bias = map(float, re.search(r"learned weight ([\d.-]+) \(true 3\), bias ([\d.-]+)", out).groups())
    assert abs(weight - 3) < 0.05 and abs(bias - 2) < 0.2


@pytest.mark.parametrize("name, epochs, minimum", [("digits_mlp", 3, 0.80), ("digits_cnn", 2, 0.85)])
def test_digits_examples_learn_and_plot(name, epochs, minimum, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curve.png"
    out = run_example(name, "--epochs", str(epochs), "--plot", str(plot), cwd=tmp_path)
    assert float(re.search(r"test accuracy ([\d.]+)", out).group(1)) >= minimum
    assert plot.stat().st_size > 1000


def test_plot_has_labelled_axes_and_a_legend_that_covers_nothing():
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(EXAMPLES))
    try:
        from _digits import figure
    finally:
        sys.path.remove(str(EXAMPLES))
    fig = figure([(2.3, 0.10), (1.2, 0.80), (0.5, 0.93), (0.3, 0.97)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left, right = fig.axes
    assert left.get_xlabel() == "epoch"
    assert left.get_ylabel() and right.get_ylabel() and left.get_ylabel() != right.get_ylabel()
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None] + fig.legends
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    assert [t.get_text() for t in legends[0].get_texts()] == ["train loss", "test accuracy"]
    # inside the figure, off the plotting area (so off the curves), off every tick label and axis label
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    assert not box.overlaps(left.get_window_extent(renderer))
    for axes in (left, right):
        for label in axes.get_xticklabels() + axes.get_yticklabels() + [axes.xaxis.label, axes.yaxis.label]:
            if label.get_visible() and label.get_text():
                assert not box.overlaps(label.get_window_extent(renderer)), label.get_text()
