"""Short error reports of the command-line tools: one line and a hint, the traceback on request.

A bad file or a refused checkpoint is the user's to fix, and its message names the file and the
reason; a 20-frame traceback only hides that line. ``--debug`` (any position) or ``MPCL_DEBUG=1``
shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MPCL_DEBUG"
T = TypeVar("T")


def pop_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (not looked for after ``--``) and whether it was there."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:cut] if a != DEBUG_FLAG]
    found = len(head) != cut
    debug = found or os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes"}
    return head + argv[cut:], debug


def one_line(error: BaseException) -> str:
    """The error's first message line, prefixed by its type unless the message names a file."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1]}"  # "Error(s) in loading ...:" says nothing on its own
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def report_errors(prog: str, run: Callable[[], T], debug: bool) -> T | int:
    """``run()``; an exception becomes one line on stderr and exit status 1 (unless ``debug``)."""
    if debug:
        return run()
    try:
        return run()
    except Exception as error:
        print(
            f"{prog}: error: {one_line(error)}\n"
            f"{prog}: (run with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return 1
