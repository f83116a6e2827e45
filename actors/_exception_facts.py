"""How a raised exception becomes a fact: its qualified name, message, traceback and
classes, as plain strings. The standard library only: a pool child builds the same facts
for the host (see ``actors._execution.child``) without importing the runtime.
"""

from __future__ import annotations

__all__ = ["exception_facts", "exception_name", "valid_text"]


def exception_name(exc_type: type[BaseException]) -> str:
    """How facts name an exception class: ``ValueError``, ``mypkg.errors.RenderError``."""
    name = exc_type.__qualname__
    if exc_type.__module__ not in ("builtins", "__main__"):
        name = f"{exc_type.__module__}.{name}"
    return name


def valid_text(text: str) -> str:
    """``text`` with any lone surrogate written as its escape (``\\udcff``): an error
    message about a file name ``os.fsdecode`` made must still be storable and showable."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def exception_facts(exc: BaseException) -> tuple[str, str, str, tuple[str, ...]]:
    """(qualified type, message, traceback, the qualified names of its classes, most
    derived first): the fields of :class:`actors.Raised`."""
    # Imported at the first failure, not at start: a pool child that never sees an
    # exception never pays for traceback (and linecache, tokenize) in its start.
    import traceback

    mro = tuple(exception_name(c) for c in type(exc).__mro__ if c is not object)
    trace = valid_text("".join(traceback.format_exception(exc)))
    return mro[0], valid_text(str(exc)), trace, mro
