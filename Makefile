# bnlab: `make demo` runs the seed study on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements*.txt | sha1sum | cut -c1-12)

.PHONY: setup data demo api worker migrate test test-unit test-integration test-browser test-tools compose-smoke lint format typecheck bench clean

setup: $(STAMP) data

$(STAMP): requirements.txt requirements-client.txt requirements-torch.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e . --no-deps
	rm -f $(VENV)/.installed-*; touch $@

# Fashion-MNIST from Debian (MNIST itself needs the internet; see README, Data sets).
data:
	@test -d /usr/share/datasets/fashion-mnist || test -d "$${BNLAB_DATASETS_DIR:-/nonexistent}/mnist" \
	  || test -d "$${BNLAB_DATA_DIR:-.data}/datasets/mnist" \
	  || scripts/apt-install dataset-fashion-mnist \
	  || echo "warning: install dataset-fashion-mnist (apt) or set BNLAB_DATASETS_DIR" >&2

# What the tests drive: PostgreSQL and Redis (started by the tests where none answers at the
# test address), Chromium, docker-compose. Without them a local run skips what needs them.
test-tools:
	@scripts/apt-install postgresql redis-server chromium chromium-driver docker-compose \
	  || echo "warning: tests that need what is missing will be skipped (CI=true: fail)" >&2

migrate: setup
	$(BIN)/alembic upgrade head

demo: setup
	$(BIN)/python -m scripts.demo

api: migrate
	$(BIN)/uvicorn api.main:app --host 127.0.0.1 --port 8000

worker: setup
	$(BIN)/celery -A worker.celery_app worker --pool solo --loglevel INFO

# Style and types over the whole tree first (a finding fails the run), then every test.
test: setup test-tools lint typecheck
	$(BIN)/python -m pytest -q tests

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

test-integration: setup
	$(BIN)/python -m pytest -q tests/integration

test-browser: setup test-tools
	$(BIN)/python -m pytest -q tests/browser

# docker-compose.yml built and run for real, through its API (needs root and dockerd; README,
# Deployment). Logs and state in .compose-smoke/.
compose-smoke: setup
	@command -v dockerd >/dev/null || scripts/apt-install docker.io
	@command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
	  || scripts/apt-install docker-compose
	@command -v debootstrap >/dev/null || scripts/apt-install debootstrap
	$(BIN)/python -m scripts.compose_smoke

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: setup
	$(BIN)/mypy .

# Every figure of issue 12 against its target, side by side (timings: README, Benchmarks).
bench: setup
	@command -v wrk >/dev/null || scripts/apt-install wrk
	$(BIN)/python -m bench.bench_service
	$(BIN)/python -m bench.bench_reads
	$(BIN)/python -m bench.bench_load
	$(BIN)/python -m bench.bench_training
	$(BIN)/python -m bench.bench_fused
	$(BIN)/python -m bench.bench_plots
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python -m bench.bench_reads
	$(BIN)/python -m bench.bench_recovery

clean:
	rm -rf .data tests/artifacts
