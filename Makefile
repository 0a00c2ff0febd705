# clubstack: `make run` starts the whole suite on embedded defaults; `make test` tests it.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 5000
export CLUBSTACK_INSTANCE ?= $(CURDIR)/instance

.PHONY: run install test test-fast bench lint audit docs wheel clean system-run system-test

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[postgres,mysql,redis,dev]'
	@# compute's libvirt bindings build only where Debian's libvirt-dev is installed
	if pkg-config --exists libvirt 2>/dev/null; then $(PIP) install -q -c constraints.txt -e '.[compute]'; \
	else echo "note: libvirt-dev not installed; compute cannot reach VM hosts (see docs/compute.md)"; fi
	touch $@

install: $(VENV)/.installed

# Debian packages come from one list, scripts/system-packages (apt-get as root or with sudo -n;
# otherwise it prints the command and make goes on with what works).
system-run:
	@scripts/system-packages run

system-test:
	@scripts/system-packages test

run: system-run install  ## migrate, start the job workers (site and contest sandbox) and the web server
	$(VENV)/bin/clubstack db upgrade
	@echo "clubstack: http://$(HOST):$(PORT)  (login links land in $(CLUBSTACK_INSTANCE)/outbox/)"
	@$(VENV)/bin/clubstack worker & worker=$$!; \
	$(VENV)/bin/clubstack contest worker & sandbox=$$!; \
	trap 'kill $$worker $$sandbox 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/clubstack serve --host $(HOST) --port $(PORT)

test: system-test install  ## the whole suite (CI=true makes every backend mandatory)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: system-test install
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

bench: install  ## benchmarks with their targets (ratios against baselines run alongside)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	@# Known vulnerabilities in constraints.txt; where no vulnerability service can be reached
	@# it says "NOT DONE" and goes on (docs/operations.md, "Dependencies").
	$(PY) scripts/audit-dependencies --allow-offline

audit: install  ## known vulnerabilities in the locked set (constraints.txt); fails offline
	$(PY) scripts/audit-dependencies

docs: install  ## regenerate docs/configuration.md from the settings classes
	$(VENV)/bin/clubstack settings --markdown > docs/configuration.md

wheel: install
	$(PY) -m build --wheel --outdir dist

clean:
	rm -rf dist build .pytest_cache .ruff_cache
