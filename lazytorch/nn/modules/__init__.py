"""The layer classes of `lazytorch.nn`, one module per family."""
from lazytorch.nn.modules.module import Module
from lazytorch.nn.modules.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from lazytorch.nn.modules.linear import Bilinear, Identity, Linear, NonDynamicallyQuantizableLinear
from lazytorch.nn.modules.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d
from lazytorch.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d,
                                          AvgPool2d, MaxPool1d, MaxPool2d)
from lazytorch.nn.modules.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm,
                                                RMSNorm)
from lazytorch.nn.modules.activation import (CELU, ELU, GELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish,
                                             Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6,
                                             Sigmoid, SiLU, Softmax, Softmin, Softplus, Softshrink, Softsign, Tanh,
                                             Tanhshrink, Threshold)
from lazytorch.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss,
                                       HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss, MSELoss, NLLLoss,
                                       PoissonNLLLoss, SmoothL1Loss)
from lazytorch.nn.modules.dropout import Dropout, Dropout1d, Dropout2d
from lazytorch.nn.modules.sparse import Embedding
from lazytorch.nn.modules.attention import MultiheadAttention
from lazytorch.nn.modules.flatten import Flatten, Unflatten
from lazytorch.nn.modules.upsampling import Upsample
