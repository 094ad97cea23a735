"""The first-run notice: one line on stderr when compiling keeps a cold process waiting.

A new user's first run compiles every kernel and jitted program it meets (the digits CNN example:
about 30 s on a cold cache), and a progress bar sitting at 0% does not say why. So once compiling
(cache misses only: loading compiled code from the disk cache never counts) has kept this process
waiting more than THRESHOLD_S seconds, one line says what is compiling and that later runs reuse
the disk cache. It is printed by a timer while the compile runs - the wait is what it explains -
at most once per process, and through tqdm's `write` while a tqdm bar is on the screen (a plain
print would land in the middle of the bar's line). `LAZYTORCH_DEBUG=0` hides it.

The compiler knows what it compiles (a program of so many kernels, a kernel); the front-end names
what for (`subject("jitted function step")` around a jitted function's compile).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from compiler.runtime import counters, diskcache

THRESHOLD_S = 1.0
"""Compiling that keeps a process waiting longer than this, in all, is announced."""

_state = {"shown": False, "waited": 0.0}
_subjects: list[str] = []


class subject:
    """`with subject("jitted function step"):` names what the compiles inside are for."""

    def __init__(self, text: str):
        self.text = text

    def __enter__(self):
        _subjects.append(self.text)

    def __exit__(self, *exc):
        _subjects.pop()


class compiling:
    """`with compiling("a program of 14 kernels in 2 segments"):` around one compile that missed
    the cache; the notice is shown while it runs if compiling in this process passes THRESHOLD_S.
    Set `.missed = False` inside if it turns out to be a load from the disk cache (it then does not
    count towards the threshold)."""

    def __init__(self, what: str):
        self.what = what
        self.missed = True
        self.timer = None

    def __enter__(self):
        if _state["shown"] or not counters.notices():
            return self
        self.start = time.perf_counter()
        delay = THRESHOLD_S - _state["waited"]
        if delay <= 0:
            _show(self.what)
        else:
            self.timer = threading.Timer(delay, _show, (self.what,))
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
            if self.missed:
                _state["waited"] += time.perf_counter() - self.start


def _show(what: str) -> None:
    if _state["shown"]:
        return
    _state["shown"] = True
    where = "" if not _subjects else f"{_subjects[-1]}: "
    if os.environ.get("LAZYTORCH_CACHE", "1") == "0":
        later = "the disk cache is off (LAZYTORCH_CACHE=0): later runs compile again"
    else:
        later = f"later runs load the compiled code from the disk cache {_shown_path(diskcache.root())}"
    _write(f"[lazytorch] compiling {where}{what}: {later} (LAZYTORCH_DEBUG=0 hides this line)")


def _shown_path(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _write(line: str) -> None:
    """Print `line` on stderr, above any tqdm progress bar on the screen rather than inside its line."""
    tqdm = sys.modules.get("tqdm")
    bar_class = getattr(tqdm, "tqdm", None)
    if bar_class is not None and getattr(bar_class, "_instances", None):
        bar_class.write(line, file=sys.stderr)
        return
    print(line, file=sys.stderr, flush=True)

