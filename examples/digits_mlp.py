"""An MLP on scikit-learn's 8x8 handwritten digits (1,797 images, bundled: no download).

    python examples/digits_mlp.py [--epochs 30] [--plot curve.png] [--no-jit]
    LAZYTORCH_EXAMPLE_QUICK=1 python examples/digits_mlp.py     # a short run (CI)

Reaches >= 95% test accuracy with the default settings.
"""
import lazytorch as torch
import lazytorch.nn as nn
from _digits import load_digits_split, parse_args, train


def main(epochs: int, plot: str = "", jit: bool = True) -> float:
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits_split()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    accuracy = train(model, x_train, y_train, x_test, y_test, epochs=epochs, lr=1e-3, plot=plot, jit=jit)
    print(f"test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    args = parse_args(__doc__, epochs=30, quick_epochs=3)
    main(args.epochs, args.plot, args.jit)
