"""The layer classes of `lazytorch.nn`, one module per family."""
from lazytorch.nn.modules import (activation, attention, container, conv, dropout, flatten, linear, loss,
                                  normalization, pooling, sparse, upsampling)
from lazytorch.nn.modules.activation import *  # noqa: F401,F403
from lazytorch.nn.modules.attention import *  # noqa: F401,F403
from lazytorch.nn.modules.container import *  # noqa: F401,F403
from lazytorch.nn.modules.conv import *  # noqa: F401,F403
from lazytorch.nn.modules.dropout import *  # noqa: F401,F403
from lazytorch.nn.modules.flatten import *  # noqa: F401,F403
from lazytorch.nn.modules.linear import *  # noqa: F401,F403
from lazytorch.nn.modules.loss import *  # noqa: F401,F403
from lazytorch.nn.modules.module import Module
from lazytorch.nn.modules.normalization import *  # noqa: F401,F403
from lazytorch.nn.modules.pooling import *  # noqa: F401,F403
from lazytorch.nn.modules.sparse import *  # noqa: F401,F403
from lazytorch.nn.modules.upsampling import *  # noqa: F401,F403

__all__ = ["Module"] + [name for family in (activation, attention, container, conv, dropout, flatten, linear, loss,
                                            normalization, pooling, sparse, upsampling) for name in family.__all__]
