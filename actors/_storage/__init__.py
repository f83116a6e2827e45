"""Where task records are kept: the store protocol, the in-memory and SQLite stores, the
value codec both use, and recovery of a durable store at start."""

__all__: list[str] = []
