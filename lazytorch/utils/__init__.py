"""`lazytorch.utils`: data loading (`lazytorch.utils.data`)."""
from lazytorch.utils import data  # noqa: F401
