"""The benchmark suite of storycore-tasks (issue 7): ``python -m benchmarks``.

Each scenario B1..B12 measures the supervisor side by side with its baseline in the same
run and reports its figures against the targets; scenarios whose feature has not landed
are listed as pending rows, never skipped. ``--quick`` runs everything small (for CI; it
asserts no speed). ``--peers`` adds issue 17's peer rows to B1, B2, B8 and B9.

Modules: :mod:`benchmarks.harness` (timing, alternation, percentiles, logging set-ups,
leak checks), :mod:`benchmarks.report` (result rows, Markdown table, JSON),
:mod:`benchmarks.sizes` (full and quick sizes), one module per scenario
(:mod:`~benchmarks.throughput`, :mod:`~benchmarks.status_latency`,
:mod:`~benchmarks.timeouts`, :mod:`~benchmarks.cancel`, :mod:`~benchmarks.hard_stops`,
:mod:`~benchmarks.memory`, :mod:`~benchmarks.scaling`, :mod:`~benchmarks.durability`,
:mod:`~benchmarks.process_overhead`, :mod:`~benchmarks.service`,
:mod:`~benchmarks.child_start`, :mod:`~benchmarks.http_load` with its load generator
:mod:`~benchmarks.load_client`), :mod:`benchmarks.peers` (one adapter per peer) and
:mod:`benchmarks.peer_rows` (the ``--peers`` rows), :mod:`benchmarks.suite` (the table
of scenarios) and :mod:`benchmarks.cli`.
"""

__all__: list[str] = []
