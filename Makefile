# scaleout-edge: everything a fresh machine needs is installed from PyPI by these targets.
PYTHON       ?= python3
VENV         := .venv
BIN          := $(VENV)/bin
# The test MongoDB-wire-compatible server (mongoeco) needs Python >= 3.13; it gets its own venv.
MONGO_PYTHON ?= PYENV_VERSION=3.13.0 python3
MONGO_VENV   := .venv-mongo

.PHONY: install test demo demo-pytorch proto bench lint clean docker-compose

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(MONGO_VENV)/.installed:
	$(MONGO_PYTHON) -m venv $(MONGO_VENV)
	$(MONGO_VENV)/bin/pip install --quiet 'mongoeco[wire]'
	touch $@

install: $(BIN)/.installed

test: $(BIN)/.installed $(MONGO_VENV)/.installed docker-compose
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SCALEOUT_TEST_MONGO_PYTHON=$(MONGO_VENV)/bin/python $(BIN)/pytest

# Debian's docker-compose 1.29 validates docker-compose.yaml without a Docker engine (tests/compose/).
# Installed only when missing; CI runs as root.
docker-compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }

# The whole federation on this machine: API + controller + one combiner in-process, three client
# processes with their own data partitions, five rounds on the mnist-numpy example.
demo: $(BIN)/.installed
	$(BIN)/scaleout local examples/mnist-numpy/client --clients 3 --rounds 5 --work-dir .scaleout/demo

# The same on the user guide's PyTorch example, unmodified: 2 clients, 5 rounds. Its torch venv is built
# from python_env.yaml into .scaleout/envs on the first run (a few minutes) and reused by later runs and
# by the tests. The data partitions and seed.npz it writes inside examples/mnist-pytorch are git-ignored.
demo-pytorch: $(BIN)/.installed
	$(BIN)/scaleout local examples/mnist-pytorch/client --clients 2 --rounds 5 \
		--work-dir .scaleout/demo-pytorch --env-dir .scaleout/envs --round-timeout 600

proto: $(BIN)/.installed
	$(BIN)/python -m scaleout.proto.generate

bench: $(BIN)/.installed $(MONGO_VENV)/.installed
	SCALEOUT_TEST_MONGO_PYTHON=$(MONGO_VENV)/bin/python $(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/round_bench.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(MONGO_VENV) .pytest_cache .ruff_cache *.egg-info
