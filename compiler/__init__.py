"""lazytorch's compiler: IR, autodiff, passes, codegen and runtime. Knows nothing of the front-end."""
from compiler.realize import plan, realize

__all__ = ["plan", "realize"]
