"""`lazytorch.nn`: modules, parameters, functional forms, initializers and utilities with
PyTorch's names and behaviour (`import lazytorch.nn as nn`)."""
from lazytorch.nn.parameter import Buffer, Parameter  # noqa: F401
from lazytorch.nn.modules import *  # noqa: F401,F403
from lazytorch.nn import functional, init, utils  # noqa: F401
