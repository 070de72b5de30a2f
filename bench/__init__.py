"""Reproducible benchmarks and their data generators (never imported by the service).

``python -m bench.generate`` loads a seeded synthetic fleet into the ``mobility_bench`` database
and the Redis GEO index; ``python -m bench.run`` loads the GraphQL API and a plain FastAPI
baseline over the same data with ``wrk`` and writes ``docs/benchmarks.md``.
"""
