"""`python -m lazytorch ...`: command-line tools.

    python -m lazytorch explain SCRIPT.py [ARGS...]   run a script, then print the programs of its
                                                      jitted functions (IR, fusion, sources) and
                                                      the kernels it ran outside them
    python -m lazytorch cache [info|clear]            the on-disk compile cache: where, how big; clear it
"""
import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    if argv is None:                    # the `lazytorch` console script calls main()
        argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "explain":
        from lazytorch.explain import _main_explain
        return _main_explain(rest)
    if command == "cache":
        from lazytorch import cache
        return cache._main(rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
