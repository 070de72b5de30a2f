"""Reproducible benchmarks and their data generators (never imported by the service).

``python -m bench.generate`` loads a seeded synthetic fleet into the ``mobility_bench`` database
and the Redis GEO index; ``python -m bench.run`` loads the GraphQL API and a plain FastAPI
baseline over the same data with ``wrk``, measures every search target of the issue (filter,
Redis outage, memory, persisted queries), prints one ``target ...`` line per target, draws the
charts (``bench.charts``) and writes ``docs/benchmarks.md``. ``--smoke`` is the short version
the test suite runs.
"""
