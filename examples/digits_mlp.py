"""An MLP on scikit-learn's 8x8 handwritten digits (1,797 images, bundled: no download).

    python examples/digits_mlp.py [--epochs 30] [--plot curve.png]
    LAZYTORCH_EXAMPLE_QUICK=1 python examples/digits_mlp.py     # a short run (CI)

Reaches >= 95% test accuracy with the default settings.
"""
import argparse
import os

import lazytorch as torch
import lazytorch.nn as nn
from _digits import load_digits_split, train


def main(epochs: int, plot: str = "") -> float:
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits_split()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    accuracy = train(model, x_train, y_train, x_test, y_test, epochs=epochs, lr=1e-3, plot=plot)
    print(f"test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3 if os.environ.get("LAZYTORCH_EXAMPLE_QUICK") else 30)
    parser.add_argument("--plot", default="", help="write a loss/accuracy curve to this PNG file")
    args = parser.parse_args()
    main(args.epochs, args.plot)
