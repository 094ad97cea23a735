"""`lazytorch.nn`: modules, parameters, functional forms, initializers and utilities with
PyTorch's names and behaviour (`import lazytorch.nn as nn`)."""
from lazytorch.nn.parameter import Buffer, Parameter
from lazytorch.nn.modules import *  # noqa: F401,F403
from lazytorch.nn.modules import (  # noqa: F401
    CELU, ELU, GELU, GLU, SELU, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d,
    BatchNorm1d, BatchNorm2d, BatchNorm3d, BCELoss, BCEWithLogitsLoss, Bilinear, Conv1d, Conv2d, Conv3d,
    ConvTranspose1d, ConvTranspose2d, CosineEmbeddingLoss, CrossEntropyLoss, Dropout, Dropout1d, Dropout2d,
    Embedding, Flatten, GroupNorm, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, HuberLoss, Identity, KLDivLoss,
    L1Loss, LayerNorm, LeakyReLU, Linear, LogSigmoid, LogSoftmax, MarginRankingLoss, MaxPool1d, MaxPool2d, Mish,
    Module, ModuleDict, ModuleList, MSELoss, MultiheadAttention, NLLLoss, NonDynamicallyQuantizableLinear,
    ParameterDict, ParameterList, PoissonNLLLoss, PReLU, ReLU, ReLU6, RMSNorm, Sequential, Sigmoid, SiLU,
    SmoothL1Loss, Softmax, Softmin, Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Threshold, Unflatten,
    Upsample,
)
from lazytorch.nn import functional, init, utils  # noqa: F401
