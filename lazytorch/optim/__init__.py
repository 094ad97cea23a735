"""`lazytorch.optim`: torch's optimizers and learning-rate schedulers, as compiled update programs.

Each `step()` builds the update as IR and realizes all parameters and optimizer state in one call,
so forward, backward and update run as one compiled program (see `optimizer.py`).
"""
from lazytorch.optim import lr_scheduler  # noqa: F401
from lazytorch.optim.adagrad import Adagrad
from lazytorch.optim.adam import Adam, AdamW
from lazytorch.optim.optimizer import Optimizer
from lazytorch.optim.rmsprop import RMSprop
from lazytorch.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
