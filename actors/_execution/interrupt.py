"""Interrupting an operation's thread: CPython's asynchronous exceptions.

``PyThreadState_SetAsyncExc`` makes a thread raise an exception at its next bytecode
boundary. It is what Dramatiq's time limits use. It cannot interrupt a thread blocked in
a C call (``time.sleep``, a socket read, a lock wait without timeout, a C extension's
loop): the exception is raised only once that call returns to Python.
"""

from __future__ import annotations

import ctypes

__all__ = ["TaskInterrupted", "deliver_pending_interrupt", "raise_in_thread"]


class TaskInterrupted(BaseException):
    """Raised inside an operation's thread to stop an operation that ignored
    ``is_cancelled()`` after its stop grace.

    A ``BaseException``, like ``KeyboardInterrupt``, so that an operation's
    ``except Exception`` does not swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int


def raise_in_thread(thread_ident: int, exc_type: type[BaseException] = TaskInterrupted) -> bool:
    """Make the thread ``thread_ident`` raise ``exc_type`` soon; False if no such thread."""
    return bool(_set_async_exc(thread_ident, exc_type))


def deliver_pending_interrupt() -> None:
    """Called inside a ``try`` once no interrupt can be set any more: one set on this
    thread but not raised yet is raised here, at this call's start (CPython checks for
    asynchronous exceptions when a Python function starts), so that ``try`` catches it.

    An interrupt is drained this way, never cleared: ``PyThreadState_SetAsyncExc(id,
    NULL)`` signals the interpreter's eval breaker with nothing to deliver, and it stays
    signalled, so that a profiler or tracer started later in any thread of the process
    (cProfile, ``sys.settrace``, coverage) loops for ever
    (tests/test_interrupt_aftermath.py)."""
