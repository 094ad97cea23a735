"""The examples run end to end (at a reduced size for the digits ones) and learn."""
import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


def test_linear_regression_learns_the_seed_line():
    weight, bias = load("linear_regression").main(epochs=1000)
    assert abs(weight - 3) < 0.05 and abs(bias - 2) < 0.2


@pytest.mark.parametrize("name, epochs, minimum", [("digits_mlp", 3, 0.80), ("digits_cnn", 2, 0.85)])
def test_digits_examples_learn(name, epochs, minimum, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    plot = str(tmp_path / "curve.png") if name == "digits_mlp" else ""
    if plot:
        pytest.importorskip("matplotlib")
    sys.path.insert(0, str(EXAMPLES))
    try:
        accuracy = load(name).main(epochs, plot)
    finally:
        sys.path.remove(str(EXAMPLES))
    assert accuracy >= minimum
    if plot:
        assert Path(plot).stat().st_size > 1000
