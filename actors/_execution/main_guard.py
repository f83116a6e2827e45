"""Process isolation and a main module without the ``if __name__ == "__main__":`` guard.

Children start with the ``spawn`` method: each one imports the host's main module again
before it runs anything (as ``__mp_main__``). A script that creates its runtime at the
top level, unguarded, would create one in every child, and that one would spawn
children of its own (multiprocessing refuses: "An attempt has been made to start a new
process before the current process has finished its bootstrapping phase"), each
printing its tracebacks and its own copy of the script's output.

So a runtime created while a pool child is still importing the main module does not
start: the child leaves at once, quietly, with :data:`UNGUARDED_MAIN_EXIT_CODE`, and the
host, seeing a child die with that code before it said "ready", fails the task with
:class:`~actors._errors.UnguardedMainError`, one line that names the fix.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

__all__ = ["CHILD_NAME_MARKER", "UNGUARDED_MAIN_EXIT_CODE", "leave_if_importing_main"]

UNGUARDED_MAIN_EXIT_CODE = 87
"""How a pool child that found an unguarded main module exits (before saying "ready")."""

CHILD_NAME_MARKER = "[actors child]"
"""In every pool child's process name: only our children leave (another program's
spawned children are not ours to stop)."""


def leave_if_importing_main() -> None:
    """Called first thing when a runtime is created: inside one of our pool children
    that is still importing the main module, end the child now (see the module doc)."""
    process = multiprocessing.current_process()
    # _inheriting is multiprocessing's own flag for "bootstrapping a spawned child";
    # its _check_not_importing_main reads the same one.
    if getattr(process, "_inheriting", False) and CHILD_NAME_MARKER in process.name:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(UNGUARDED_MAIN_EXIT_CODE)
