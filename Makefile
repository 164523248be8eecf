# One set of checks, run the same way by people and CI.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_REVIEWS ?= ../shared/data/womens_clothing_ecommerce_reviews.csv
# A private home for the test suite's own cache, so tests never touch ~/.loopwise.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ORT_DISABLE_TELEMETRY := 1
export RAY_AUTH_MODE := disabled
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint format check install seed browser benchmark clean lock

## demo: set everything up, then run the course loop on the reviews data (offline, embedded default)
demo: install seed
	$(BIN)/loopwise demo

## test: lint, then the whole test suite (SQLite and PostgreSQL, unit and integration) on both cores
test: install seed browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	@# mypy (about a minute) checks beside the tests, in the time they wait on servers and processes
	$(BIN)/mypy src/loopwise > .mypy.log 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=20; tests=$$?; \
	wait $$mypy; typed=$$?; cat .mypy.log; rm -f .mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

## install: the virtual environment from requirements.lock (exact versions with hashes), then loopwise itself
install: $(VENV)/.installed

# uv installs the lock in a fraction of pip's time (about 15 s against 100 s on a fresh machine). pip, whose
# own pinned, hashed copy of uv comes first, tells it where this machine keeps its wheels and indexes; the
# best match across all of them, as pip chooses.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --require-hashes --no-deps \
		-r <(awk '/^uv==/ { on = 1; print; next } on && /^ / { print; next } { on = 0 }' requirements.lock)
	export UV_FIND_LINKS="$$(echo $${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)} | tr ' ' ,)"; \
	export UV_EXTRA_INDEX_URL="$${PIP_EXTRA_INDEX_URL:-$$($(BIN)/python -m pip config get global.extra-index-url 2>/dev/null)}"; \
	$(BIN)/uv pip install --quiet --python $(BIN)/python --index-strategy unsafe-best-match \
		--require-hashes --no-deps -r requirements.lock && \
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

## lock: refresh requirements.lock from pyproject.toml's ranges (then commit it on its own)
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra train --extra ray --extra s3 --extra dev --generate-hashes --upgrade \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--find-links "$${PIP_FIND_LINKS:-$$($(PYTHON) -m pip config get global.find-links)}" --no-emit-find-links \
		--override lock-overrides.txt --custom-compile-command 'make lock' --quiet -o requirements.lock

## seed: put the course CSV into the data cache from ../shared/data when it is there (no download)
seed: install
	@if [ -f "$(SHARED_REVIEWS)" ]; then \
		$(BIN)/loopwise data fetch reviews --file "$(SHARED_REVIEWS)"; \
	else \
		echo "$(SHARED_REVIEWS) not found: 'loopwise data fetch reviews' will download the course CSV"; \
	fi

## browser: Debian's Chromium for the browser tests (apt-get, about 30 s; nothing to do when it is there)
browser:
	@test -x /usr/bin/chromium || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "could not install chromium (apt-get install -y chromium): the browser tests will be skipped"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/loopwise

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## benchmark: every benchmark (figures into benchmarks/results/*.json; course_lab1 takes about an hour)
benchmark: install seed
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/data_parallel.py
	$(BIN)/python benchmarks/tuning_overhead.py
	$(BIN)/python benchmarks/tuning_efficiency.py
	$(BIN)/python benchmarks/course_lab1.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/drift_power.py
	$(BIN)/python benchmarks/labeling_load.py
	$(BIN)/python benchmarks/auto_labeling.py
	$(BIN)/python benchmarks/review_overhead.py
	$(BIN)/python benchmarks/closed_loop.py
	$(BIN)/python benchmarks/fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
