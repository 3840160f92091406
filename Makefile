# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; torch is pinned to the CPU build that installs fast here.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: demo r1 test test-compat lint format bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/r1lab demo --overwrite

# DeepSeek-R1's whole recipe on the micro-world into runs/r1; run again, it continues where it
# stopped and skips the stages already done (docs/r1.md).
r1: $(STAMP)
	$(BIN)/r1lab r1

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: lint
	$(BIN)/python -m pytest -q

# The tests that drive a model (rollout, trainer, eval) against the oldest transformers that
# pyproject.toml allows, in a throwaway venv; `make test` covers the newest. About 4 minutes.
COMPAT_VENV        ?= /tmp/r1lab-compat
COMPAT_TRANSFORMERS ?= transformers==4.56.*
test-compat:
	rm -rf $(COMPAT_VENV)
	$(PY) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/pip install -q $(TORCH) '$(COMPAT_TRANSFORMERS)' -e '.[dev]'
	$(COMPAT_VENV)/bin/python -c "import transformers as t; print('transformers', t.__version__)"
	$(COMPAT_VENV)/bin/python -m pytest -q tests/rollout tests/rl tests/test_evaluate.py

# Every benchmark of docs/benchmarks.md, one after the other (each also runs on its own).
bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/rewards.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/grpo_step.py
	$(BIN)/python bench/prefix_update.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
