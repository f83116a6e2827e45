"""B11's baseline child: the target of a bare ``spawn``ed process. It imports nothing
(the interpreter, ``multiprocessing``'s bootstrap and this empty module are all it
loads), so a child started with it is the floor of a cold ``spawn`` start."""

__all__ = ["hello"]


def hello(conn):  # type: ignore[no-untyped-def]  # typing would be an import
    """Say one byte to the parent over ``conn`` (a ``multiprocessing`` connection)."""
    conn.send_bytes(b"!")
    conn.close()
