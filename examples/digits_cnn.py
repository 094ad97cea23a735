"""A small CNN (Conv2d + BatchNorm + pooling) on scikit-learn's 8x8 handwritten digits.

    python examples/digits_cnn.py [--epochs 20] [--plot curve.png] [--no-jit]
    LAZYTORCH_EXAMPLE_QUICK=1 python examples/digits_cnn.py     # a short run (CI)

Reaches >= 97% test accuracy with the default settings.
"""
import lazytorch as torch
import lazytorch.nn as nn
from _digits import load_digits_split, parse_args, train


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 4 x 4
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 2 x 2
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def main(epochs: int, plot: str = "", jit: bool = True) -> float:
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits_split()
    accuracy = train(make_model(), x_train, y_train, x_test, y_test, epochs=epochs, lr=3e-3, plot=plot, jit=jit)
    print(f"test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    args = parse_args(__doc__, epochs=20, quick_epochs=2)
    main(args.epochs, args.plot, args.jit)
