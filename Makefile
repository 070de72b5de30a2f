# Two commands on a fresh machine: `make run` and `make test`. Everything here is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
MOBILITY  := $(VENV)/bin/mobility
STAMP     := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILT := web/dist/graphiql/manifest.json

export MOBILITY_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/mobility
export MOBILITY_REDIS_URL    ?= redis://127.0.0.1:6379/0

# The test suite owns its own database and Redis db, so `make test` never touches demo data.
# Two checkouts testing at once on one machine give each its own: make test TEST_DB=mobility_b_test
# (the name must end in _test).
TEST_DB ?= mobility_test
TEST_ENV := MOBILITY_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/$(TEST_DB) \
            MOBILITY_REDIS_URL=redis://127.0.0.1:6379/15 MOBILITY_ENVIRONMENT=test

.PHONY: help install system venv web migrate demo run serve test screenshots check lint typecheck schema bench bench-quick clean

help:
	@echo "make run    - set everything up, register + sync the demo operators, serve http://127.0.0.1:8000/graphql"
	@echo "make test   - set everything up, run the whole test suite against PostgreSQL/PostGIS and Redis"
	@echo "make install | web | migrate | demo | serve | screenshots | check | lint | typecheck | schema | bench | bench-quick | clean"

install: system venv web

system:
	@bash scripts/install-system.sh

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)
	@echo "python environment ready in $(VENV)"

# The browser assets (GraphiQL, the web app) and the JavaScript client tests: one npm package with a committed
# lockfile (web/), installed with `npm ci` and built into web/dist, which the API serves.
web: $(WEB_BUILT)

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: Node.js 20 with npm is required (web/)" >&2; exit 1; }
	@echo "installing web/ npm packages..."
	@cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_STAMP)

$(WEB_BUILT): $(WEB_STAMP) web/scripts/build.mjs web/vite.config.mjs $(wildcard web/src/*/*)
	@cd web && npm run --silent build

migrate: install
	@$(MOBILITY) migrate

demo: migrate
	@$(MOBILITY) demo

run: demo
	@$(MOBILITY) serve --host 127.0.0.1 --port 8000

serve: install
	@$(MOBILITY) serve --host 127.0.0.1 --port 8000

test: install
	@$(TEST_ENV) $(MOBILITY) migrate
	@$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# The web app's screens in docs/images, from the demo: run `make run` in another terminal first.
screenshots: install
	@cd web && node scripts/screenshots.mjs http://127.0.0.1:8000

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: install
	@$(VENV)/bin/mypy

# What CI runs before the tests (.ci/run): lint, formatting and strict typing of every package,
# tests included.
check: lint typecheck

schema: install
	@$(PY) -m graphql_schema.export

# The benchmark creates and migrates its own database (mobility_bench), not the demo one.
bench: install
	@$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: install
	@$(PY) -m bench.run --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-tipg .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist
