# Coupon Lab: every target works on a fresh machine with only Python 3.11 (embedded servers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test bench bench-edge worker lab migrate clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/flask --app app db upgrade

serve: migrate
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

worker: migrate
	$(BIN)/flask --app app worker $(WORKER_ARGS)

# In-process throughput per strategy, then the async path over HTTP (queued, sold out, drain).
bench: migrate
	$(BIN)/flask --app app bench $(BENCH_ARGS)
	$(BIN)/flask --app app bench-http $(BENCH_HTTP_ARGS)

# What nginx in front costs: wrk on /ping and queued issues, direct and through deploy/ (needs
# `apt-get install nginx wrk`).
bench-edge: migrate
	$(BIN)/python -m deploy.bench $(BENCH_EDGE_ARGS)

# Every strategy side by side under locust load; LAB_ARGS e.g. --scenario lease-expiry, or
# --baseline reports/<timestamp> --fail-on-regression to gate on a previous run (docs/report.md).
lab: migrate
	$(BIN)/flask --app app lab $(LAB_ARGS)

clean:
	rm -rf $(VENV) .coupon-data reports .pytest_cache
