"""Interrupting an operation's thread: CPython's asynchronous exceptions.

``PyThreadState_SetAsyncExc`` makes a thread raise an exception at its next bytecode
boundary. It is what Dramatiq's time limits use. It cannot interrupt a thread blocked in
a C call (``time.sleep``, a socket read, a lock wait without timeout, a C extension's
loop): the exception is raised only once that call returns to Python.
"""

from __future__ import annotations

import ctypes

__all__ = ["TaskInterrupted", "clear_interrupt", "raise_in_thread"]


class TaskInterrupted(BaseException):
    """Raised inside an operation's thread to stop an operation that ignored
    ``is_cancelled()`` after its stop grace.

    A ``BaseException``, like ``KeyboardInterrupt``, so that an operation's
    ``except Exception`` does not swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int

# The same C function, typed so that None passes NULL (which clears a pending exception).
# PYFUNCTYPE, not CFUNCTYPE: the C API must be called with the GIL held.
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def raise_in_thread(thread_ident: int, exc_type: type[BaseException] = TaskInterrupted) -> bool:
    """Make the thread ``thread_ident`` raise ``exc_type`` soon; False if no such thread."""
    return bool(_set_async_exc(thread_ident, exc_type))


def clear_interrupt(thread_ident: int) -> None:
    """Drop an asynchronous exception set on the thread but not raised yet."""
    _clear_async_exc(thread_ident, None)
