# `make run` serves the service (with the local sandbox when no Agora credentials are set);
# `make test` runs the whole suite, on SQLite and on a throwaway PostgreSQL server, with a
# throwaway Radicale CalDAV server beside it.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run call test lint fuzz bench clean

# uv installs the requirements in seconds where pip takes about 25 s on a 2-core machine. It
# reads its own index settings (UV_DEFAULT_INDEX, UV_INDEX_URL; PyPI by default), not pip's:
# with a package index configured for pip only, `make install UV=` installs with pip alone.
# Where uv cannot be installed or cannot install the files, pip installs them instead.
UV ?= $(VENV)/bin/uv
install_requirements = { [ -n "$(UV)" ] && $(UV) pip install --quiet --compile-bytecode \
	--python $(PY) -r $(1); } || $(PY) -m pip install --quiet --disable-pip-version-check -r $(1)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	[ -z "$(UV)" ] || $(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.9,<1" || true
	$(call install_requirements,requirements-dev.txt)
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) scripts/run.py

# One simulated call against the service that `make run` serves (see `flask simulate --help`).
call: install
	$(VENV)/bin/flask --app app simulate call

# Four pytest-xdist workers, a test file each at a time (a file's module-scoped servers stay in one
# worker), taken in the order tests/conftest.py gives (slowest files first); each worker has
# PostgreSQL databases of its own. Four on two cores: much of the suite waits on servers it
# started, and two workers left the cores half idle.
PYTEST_PARALLEL ?= -n 4 --dist loadfile --no-loadscope-reorder

# The suite starts some 200 Python processes (servers, workers, commands); where the environment
# says not to write bytecode (PYTHONDONTWRITEBYTECODE, as on this project's CI image) each one
# would compile the project's modules and pytest would rewrite every test module again. The
# test run writes them (__pycache__ is git-ignored): about 40 s of CPU less.
test: export PYTHONDONTWRITEBYTECODE :=
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	bash scripts/ensure_chromium.sh
	@# On a fresh clone every xdist worker would compile the project and rewrite every test
	@# module (pytest's assertion rewriting) at the same moment, four times over. Two processes
	@# do it once first, a half of the suite each, and the workers read what they wrote. Any
	@# error is left for the real run to report.
	@{ $(VENV)/bin/pytest --collect-only -q -p no:xdist tests/unit >/dev/null 2>&1 & \
	  $(VENV)/bin/pytest --collect-only -q -p no:xdist tests/integration tests/e2e tests/fuzz \
	    >/dev/null 2>&1; wait; } || true
	RADICALE_PYTHON=$(PY) bash scripts/with_postgres.sh bash scripts/with_radicale.sh \
		$(VENV)/bin/pytest $(PYTEST_PARALLEL) --durations=10

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# A long hypothesis run of the fuzz suite alone (tests/fuzz), on SQLite and PostgreSQL; `make test`
# runs the same tests with a small, fixed set of examples.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz bash scripts/with_postgres.sh $(VENV)/bin/pytest tests/fuzz

bench: install
	$(call install_requirements,requirements-bench.txt)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
