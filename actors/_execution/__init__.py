"""Where an operation runs: the worker actor, the task context, the operation thread pool,
the process pool and the code that runs inside a child, fault injection."""

__all__: list[str] = []
