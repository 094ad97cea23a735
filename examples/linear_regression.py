"""The seed's linear regression: fit y = 3x + 2 (plus noise) with nn.Linear(1, 1) and SGD.

    python examples/linear_regression.py            # 1,000 epochs
    LAZYTORCH_EXAMPLE_QUICK=1 python examples/linear_regression.py   # 200 epochs (CI)

The training loop is the seed's, unchanged; only the import differs from PyTorch.
"""
import os

import lazytorch as torch
import lazytorch.nn as nn
import lazytorch.optim as optim


class LinearRegression(nn.Module):
    def __init__(self):
        super(LinearRegression, self).__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)


def main(epochs: int) -> tuple[float, float]:
    torch.manual_seed(0)
    x = torch.rand(100, 1) * 10
    y = 3 * x + 2 + torch.randn(100, 1) * 0.5

    model = LinearRegression()
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    for epoch in range(epochs):
        optimizer.zero_grad()
        y_pred = model(x)
        loss = (y_pred - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        if (epoch + 1) % (epochs // 5) == 0:
            print(f"epoch {epoch + 1:5d}  loss {loss.item():.4f}")

    weight, bias = model.linear.weight.item(), model.linear.bias.item()
    print(f"learned weight {weight:.3f} (true 3), bias {bias:.3f} (true 2)")
    return weight, bias


if __name__ == "__main__":
    main(200 if os.environ.get("LAZYTORCH_EXAMPLE_QUICK") else 1000)
