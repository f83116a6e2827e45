"""The actors and the state objects they own: supervisor, registry, runtime facade,
messages, the pending queue, schedules, dependencies, the task table, timers."""

__all__: list[str] = []
