# Coupon Lab: every target works on a fresh machine with only Python 3.11 (embedded servers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-service install-load serve test test-fast check bench bench-edge worker lab migrate clean

# requirements.txt includes requirements/: the service's, the embedded servers', the lab's and
# development's pins. Every target below installs all of them once.
$(STAMP): requirements.txt $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# The images (Dockerfile): the service alone, or the service and the lab's load generator.
install-service:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/service.txt

install-load: install-service
	$(BIN)/pip install --quiet -r requirements/lab.txt

migrate: $(STAMP)
	$(BIN)/flask --app app db upgrade

serve: migrate
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite without the tests marked slow (real servers under load, crowds on locks, faults).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Lint, format and types, as CI runs them (pyproject.toml).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

worker: migrate
	$(BIN)/flask --app app worker $(WORKER_ARGS)

# In-process throughput per strategy, then the async path over HTTP (queued, sold out, drain),
# then what WAIT 1 costs queued and lua (a private primary and replica; docs/failover.md).
bench: migrate
	$(BIN)/flask --app app bench $(BENCH_ARGS)
	$(BIN)/flask --app app bench-http $(BENCH_HTTP_ARGS)
	$(BIN)/flask --app app bench-wait $(BENCH_WAIT_ARGS)

# What nginx in front costs: wrk on /ping and queued issues, direct and through deploy/ (needs
# `apt-get install nginx wrk`).
bench-edge: migrate
	$(BIN)/python -m coupon.lab.bench.bench_edge $(BENCH_EDGE_ARGS)

# Every strategy side by side under locust load; LAB_ARGS e.g. --scenario lease-expiry, or
# --baseline reports/<timestamp> --fail-on-regression to gate on a previous run (docs/report.md).
lab: migrate
	$(BIN)/flask --app app lab $(LAB_ARGS)

clean:
	rm -rf $(VENV) .coupon-data reports .pytest_cache
