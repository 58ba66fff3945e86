# Factorion: every target sets itself up; `make test` works on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench serve bridge train ship experiment mod clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,train,serve]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -n 2
	@# the mimic's kernels must also be right as plain Python (STYLE.md)
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -p no:cacheprovider tests/test_sim_fixtures.py tests/test_sim_engine.py tests/test_sim_properties.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) -m training.bench sim

# The default recipe: pre-training, more of it with hub choices and recovery lessons, then
# PPO, then the ONNX export and its evaluation, all in runs/$(RUN)-*/. Flags for each step:
# SFT_FLAGS, HUB_FLAGS, PPO_FLAGS (see configs/*.yaml).
RUN ?= default
SFT_FLAGS ?=
HUB_FLAGS ?=
PPO_FLAGS ?=
train: install
	$(PY) -m training.sft --config configs/sft.yaml --name $(RUN)-sft $(SFT_FLAGS)
	$(PY) -m training.sft --config configs/sft-hubs.yaml --name $(RUN)-hubs --init runs/$(RUN)-sft/checkpoints/best.pt $(HUB_FLAGS)
	$(PY) -m training.ppo --config configs/ppo.yaml --name $(RUN)-ppo --init runs/$(RUN)-hubs/checkpoints/latest.pt $(PPO_FLAGS)
	$(PY) -m training.export runs/$(RUN)-ppo/checkpoints/best.pt -o runs/$(RUN)-ppo/policy.onnx
	$(PY) -m training.evaluate --policy runs/$(RUN)-ppo/policy.onnx --compare-expert \
		--markdown runs/$(RUN)-ppo/evaluation.md --png runs/$(RUN)-ppo/evaluation.png

# An experiment over seeds (runs/<its name>/); compare two with
# `python -m training.experiment compare runs/A runs/B --log docs/EXPERIMENTS.md`.
EXP ?= experiments/bench.yaml
SEEDS ?= 3
JOBS ?= 2
experiment: install
	$(PY) -m training.experiment run $(EXP) --seeds $(SEEDS) --jobs $(JOBS)

# The mod as the game installs it: dist/factorion_<version>.zip (no venv needed).
mod:
	$(PYTHON) scripts/build_mod.py

# Make a run's policy the one the server ships with (server/policies/default.onnx).
ship:
	cp runs/$(RUN)-ppo/policy.onnx server/policies/default.onnx
	cp runs/$(RUN)-ppo/evaluation.md server/policies/default.evaluation.md

# The planning server on 127.0.0.1:8000 with the bundled policy (python -m server --help).
SERVE_FLAGS ?=
serve: install
	$(PY) -m server $(SERVE_FLAGS)

# The RCON bridge between a running game and the server (docs/BRIDGE.md).
bridge: install
	$(PY) -m server.bridge

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
