"""Shared by the digits examples: scikit-learn's bundled 8x8 digits as lazytorch tensors."""
import argparse
import os

import numpy as np

import lazytorch as torch


def parse_args(doc: str, epochs: int, quick_epochs: int) -> argparse.Namespace:
    """--epochs (`quick_epochs` under LAZYTORCH_EXAMPLE_QUICK, else `epochs`), --plot, --no-jit."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=quick_epochs if os.environ.get("LAZYTORCH_EXAMPLE_QUICK")
                        else epochs)
    parser.add_argument("--plot", default="", help="write a loss/accuracy curve to this PNG file")
    parser.add_argument("--no-jit", dest="jit", action="store_false",
                        help="run the training step eagerly instead of as one compiled program")
    return parser.parse_args()


def load_digits_split(test_fraction: float = 0.2, seed: int = 0):
    """(x_train, y_train, x_test, y_test): images scaled to [0, 1] as float32 (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits   # bundled with scikit-learn: no download
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=test_fraction, random_state=seed,
        stratify=digits.target)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train),
            torch.from_numpy(x_test), torch.from_numpy(y_test))


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(1)
    model.train()
    return (predicted == y).float().mean().item()


def train(model, x_train, y_train, x_test, y_test, epochs: int, lr: float, plot: str = "", jit: bool = True):
    """Adam + cross-entropy with a tqdm progress bar; returns the final test accuracy. With `jit`,
    the training step (forward, backward, Adam update) is one compiled program per batch shape."""
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=64,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    if jit:
        step = torch.jit(step)
    history = []
    bar = tqdm(range(epochs), desc="training")
    for _ in bar:
        total, batches = 0.0, 0
        for xb, yb in loader:
            loss = step(xb, yb)
            total += loss.item()
            batches += 1
        test_accuracy = accuracy(model, x_test, y_test)
        history.append((total / batches, test_accuracy))
        bar.set_postfix(loss=f"{total / batches:.4f}", test_acc=f"{test_accuracy:.3f}")
    if plot:
        _plot(history, plot)
    return history[-1][1]


def _plot(history, path: str) -> None:
    figure(history).savefig(path)
    print(f"wrote {path}")


def figure(history):
    """Train loss (left axis) and test accuracy (right axis) per epoch; the legend sits above the
    plot, where it covers neither the curves nor either axis's tick labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    losses, accuracies = zip(*history)
    epochs = range(1, len(history) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    (loss_line,) = ax.plot(epochs, losses, color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (cross-entropy)", color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = ax.twinx()
    (accuracy_line,) = right.plot(epochs, accuracies, color="tab:orange", label="test accuracy")
    right.set_ylabel("test accuracy", color="tab:orange")
    ax.legend(handles=[loss_line, accuracy_line], loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig
