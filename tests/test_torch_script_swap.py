"""A training script written for PyTorch gives PyTorch's loss sequence with the import swapped."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

SCRIPT = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)
        return self.fc2(F.gelu(self.fc1(torch.flatten(x, 1))))


def train(weights, batches):
    model = Net()
    model.load_state_dict({name: torch.tensor(value) for name, value in weights.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(torch.tensor(x)), torch.tensor(y), label_smoothing=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses
'''

SWAPPED = (SCRIPT.replace("import torch.nn.functional as F", "import lazytorch.nn.functional as F")
           .replace("import torch.nn as nn", "import lazytorch.nn as nn")
           .replace("import torch\n", "import lazytorch as torch\n"))


def run(source: str, weights, batches):
    namespace: dict = {}
    exec(compile(source, "<training script>", "exec"), namespace)
    return namespace["train"](weights, batches)


def test_same_loss_sequence_as_torch_over_50_steps():
    rng = np.random.default_rng(0)
    reference: dict = {}
    exec(compile(SCRIPT, "<training script>", "exec"), reference)
    torch.manual_seed(0)
    weights = {k: v.detach().numpy().copy() for k, v in reference["Net"]().state_dict().items()}
    batches = [(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 5, 8))
               for _ in range(50)]
    expected = run(SCRIPT, weights, batches)
    actual = run(SWAPPED, weights, batches)
    assert "import lazytorch as torch" in SWAPPED and "import torch\n" not in SWAPPED
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
