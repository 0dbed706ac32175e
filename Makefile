# scaleout-edge: everything a fresh machine needs is installed from PyPI by these targets.
#
#   make test                     the whole suite on the default python3 (venv .venv)
#   make test PYTHON=python3.12   the same on another supported Python (venv .venv-3.12)
#   make e2e PYTHON=python3.13    a quick end-to-end federation on that Python
#   SCALEOUT_TEST_MONGO_URI=mongodb://localhost:27017 make test   tests against a real MongoDB
PYTHON       ?= python3
SUPPORTED    := 3.11 3.12 3.13
# The interpreter behind PYTHON: `python3.12` also finds pyenv's 3.12 when its shim is not enabled.
PY_WANTED    := $(patsubst python%,%,$(filter python3.%,$(notdir $(PYTHON))))
PYTHON_EXE   := $(shell tools/find-python $(or $(PY_WANTED),--at-least 3.11) $(PYTHON))
PY_VERSION   := $(if $(PYTHON_EXE),$(shell $(PYTHON_EXE) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))
# The default Python keeps the venv every README command names; others get one each.
VENV         := $(if $(filter file,$(origin PYTHON)),.venv,.venv-$(PY_VERSION))
BIN          := $(VENV)/bin
# Pins of what was tested, per Python (`make lock` rewrites them); a changed pin reinstalls the venv.
CONSTRAINTS  := constraints/py$(PY_VERSION).txt
# The test MongoDB-wire-compatible server (mongoeco) needs Python >= 3.13; it gets its own venv.
# MONGO_PYTHON names an interpreter to try first; tools/find-python also looks for python3.13/3.14,
# pyenv's 3.13.x and `uv python find`. With SCALEOUT_TEST_MONGO_URI set no such venv is needed.
MONGO_PYTHON ?=
MONGO_VENV   := .venv-mongo
MONGO_SERVER := $(if $(SCALEOUT_TEST_MONGO_URI),,$(MONGO_VENV)/.installed)
MONGO_ENV    := $(if $(SCALEOUT_TEST_MONGO_URI),,SCALEOUT_TEST_MONGO_PYTHON=$(MONGO_VENV)/bin/python)
define MONGO_HELP
make: the tests need a MongoDB-wire-compatible server and none can be provided:
  the test server (mongoeco) needs Python 3.13 or newer, and none was found
  (tried MONGO_PYTHON, python3.13, python3.14, pyenv's 3.13.x, uv).
Either
  - install Python 3.13 (e.g. `pyenv install 3.13`, `uv python install 3.13`, or your system's
    python3.13 package) and run make again (or name it: make test MONGO_PYTHON=/path/to/python3.13), or
  - point the tests at a MongoDB you run: SCALEOUT_TEST_MONGO_URI=mongodb://localhost:27017 make test
    (e.g. after `docker run -d -p 27017:27017 mongo:7`).
endef
export MONGO_HELP
# Issue 13's compatibility tests run the vendor's own code, unmodified, as separate processes: the official
# Scaleout Edge client (`scaleout`/`scaleoututil` 1.1.0, which share our import names) and FEDn 0.33's
# APIClient. Both need Python >= 3.12 and each gets a venv of its own, never the project's.
OFFICIAL_VENV := .venv-official
FEDN_VENV     := .venv-fedn
COMPAT_ENV    := SCALEOUT_TEST_OFFICIAL_PYTHON=$(OFFICIAL_VENV)/bin/python SCALEOUT_TEST_FEDN_PYTHON=$(FEDN_VENV)/bin/python

.PHONY: install compat-venvs test e2e chaos demo demo-pytorch proto bench lint lock clean docker-compose chromium python

python:
	@test -n "$(PYTHON_EXE)" || { echo "make: no Python $(or $(PY_WANTED),3.11 or newer) found for PYTHON=$(PYTHON); supported: $(SUPPORTED)" >&2; exit 2; }
	@case " $(SUPPORTED) " in *" $(PY_VERSION) "*) ;; *) echo "make: $(PYTHON_EXE) is Python $(PY_VERSION); supported: $(SUPPORTED)" >&2; exit 2;; esac

# One line while it installs; pip's own output goes to $(VENV).log, shown only when the install fails.
$(BIN)/.installed: pyproject.toml $(wildcard $(CONSTRAINTS)) | python
	@echo "installing scaleout-edge and its dependencies into $(VENV) (a few minutes the first time; log: $(VENV).log)…"
	@{ $(PYTHON_EXE) -m venv $(VENV) \
	  && $(BIN)/pip install --quiet --upgrade pip \
	  && $(BIN)/pip install --quiet $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS)) -e '.[test]'; \
	} > $(VENV).log 2>&1 || { tail -n 40 $(VENV).log >&2; echo "make: installing into $(VENV) failed; see $(VENV).log" >&2; exit 1; }
	@touch $@

$(MONGO_VENV)/.installed: $(wildcard constraints/mongo.txt)
	@python="$$(tools/find-python --at-least 3.13 $(MONGO_PYTHON))" || { echo "$$MONGO_HELP" >&2; exit 2; }; \
	echo "$$python -m venv $(MONGO_VENV)"; "$$python" -m venv $(MONGO_VENV)
	$(MONGO_VENV)/bin/pip install --quiet $(if $(wildcard constraints/mongo.txt),-c constraints/mongo.txt) 'mongoeco[wire]'
	touch $@

$(OFFICIAL_VENV)/.installed: $(wildcard constraints/official.txt)
	python="$$(tools/find-python --at-least 3.12)" && "$$python" -m venv $(OFFICIAL_VENV)
	$(OFFICIAL_VENV)/bin/pip install --quiet $(if $(wildcard constraints/official.txt),-c constraints/official.txt) \
		scaleout==1.1.0 scaleoututil==1.1.0
	touch $@

$(FEDN_VENV)/.installed: $(wildcard constraints/fedn.txt)
	python="$$(tools/find-python --at-least 3.12)" && "$$python" -m venv $(FEDN_VENV)
	$(FEDN_VENV)/bin/pip install --quiet $(if $(wildcard constraints/fedn.txt),-c constraints/fedn.txt) fedn==0.33.0
	touch $@

compat-venvs: $(OFFICIAL_VENV)/.installed $(FEDN_VENV)/.installed

install: $(BIN)/.installed

test: $(BIN)/.installed $(MONGO_SERVER) compat-venvs docker-compose chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MONGO_ENV) $(COMPAT_ENV) $(BIN)/pytest

# One federation end to end on this Python, over SQLite + files and over MongoDB + S3: what CI runs on
# each supported Python besides the default one.
e2e: $(BIN)/.installed $(MONGO_SERVER)
	$(MONGO_ENV) $(BIN)/pytest -p no:cacheprovider tests/e2e/test_mnist_session.py tests/test_proto.py

# The long chaos run (issue 9, tests/chaos): 30-round sessions while a seeded random schedule kill -9s and
# restarts the API, combiners and clients and SIGSTOPs clients, on CHAOS_SEEDS fresh seeds (each printed;
# replay one with `--chaos-seed N`), plus the bounded runs on SQLite and MongoDB. Each run's logs and
# chaos-summary.json stay in .scaleout/chaos/<test>/ until the next `make chaos`.
CHAOS_SEEDS ?= 3
chaos: $(BIN)/.installed $(MONGO_SERVER)
	mkdir -p .scaleout  # pytest makes --basetemp but not its parent
	$(MONGO_ENV) \
		$(BIN)/pytest tests/chaos -s --chaos-long --chaos-seeds $(CHAOS_SEEDS) --basetemp .scaleout/chaos

# Debian's docker-compose 1.29 validates docker-compose.yaml without a Docker engine (tests/compose/).
# Installed only when missing; CI runs as root.
docker-compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }

# The browser tests (tests/browser/) drive Debian's Chromium through Playwright: Playwright's own browser
# download is never used. Installed only when missing; CI runs as root.
chromium:
	@test -x /usr/bin/chromium || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

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

bench: $(BIN)/.installed $(MONGO_SERVER)
	$(MONGO_ENV) $(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/round_bench.py
	$(BIN)/python benchmarks/async_bench.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# Rewrite the pins from what is installed now (after a `make install` without pins, or an upgrade).
lock: $(BIN)/.installed $(MONGO_SERVER) compat-venvs
	@mkdir -p constraints
	$(BIN)/pip freeze --exclude-editable --exclude scaleout-edge > $(CONSTRAINTS)
	$(if $(MONGO_SERVER),$(MONGO_VENV)/bin/pip freeze > constraints/mongo.txt)
	$(OFFICIAL_VENV)/bin/pip freeze > constraints/official.txt
	$(FEDN_VENV)/bin/pip freeze > constraints/fedn.txt
	@touch $(BIN)/.installed $(MONGO_SERVER) $(OFFICIAL_VENV)/.installed $(FEDN_VENV)/.installed

clean:
	rm -rf .venv .venv-3.* $(MONGO_VENV) $(OFFICIAL_VENV) $(FEDN_VENV) .pytest_cache .ruff_cache *.egg-info
