# Anwang: `make demo` serves the 郾城区 demo, `make test` runs the whole suite.
# Both install what is missing first (Debian packages, the Python venv, npm assets); second runs
# are quick because every step is skipped when its stamp is newer than its inputs.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_UNITS ?= 20
PYTEST_ARGS ?=
VALIDATE_GPKG := /usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py

.PHONY: setup system-deps test-deps demo serve test test-fast lint lint-py lint-js bench db-up db-down translations clean

setup: system-deps $(VENV)/.installed node_modules/.installed translations

# Debian's PostgreSQL server and the PostGIS build for that version, when missing.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL …"; $(APT) update -qq && $(APT) install -y -qq postgresql postgresql-contrib >/dev/null; fi
	@ver=$$(ls /usr/lib/postgresql | sort -n | tail -1); \
	if ! ls /usr/share/postgresql/$$ver/extension/postgis.control >/dev/null 2>&1; then \
	  echo "installing PostGIS for PostgreSQL $$ver …"; $(APT) update -qq && $(APT) install -y -qq postgresql-$$ver-postgis-3 >/dev/null; fi
	@command -v npm >/dev/null || { echo "installing Node.js and npm …"; $(APT) update -qq && $(APT) install -y -qq nodejs npm >/dev/null; }
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { echo "installing python3-venv …"; $(APT) update -qq && $(APT) install -y -qq python3-venv >/dev/null; }

# What only the tests need: the system Chromium and CJK fonts for screenshots, and GDAL's command
# line tools (ogrinfo, ogr2ogr), the real GIS client the OGC API – Features tests drive, and its
# GeoPackage validator (python3-gdal's validate_gpkg.py), which the exports are checked with.
test-deps:
	@command -v chromium >/dev/null || { echo "installing Chromium …"; $(APT) update -qq && $(APT) install -y -qq chromium fonts-noto-cjk >/dev/null; }
	@command -v ogrinfo >/dev/null || { echo "installing GDAL …"; $(APT) update -qq && $(APT) install -y -qq gdal-bin >/dev/null; }
	@test -f $(VALIDATE_GPKG) || { echo "installing GDAL's Python tools …"; $(APT) update -qq && $(APT) install -y -qq python3-gdal >/dev/null; }

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

translations: $(VENV)/.installed $(patsubst %.po,%.mo,$(wildcard web/translations/*/LC_MESSAGES/messages.po))

web/translations/%/LC_MESSAGES/messages.mo: web/translations/%/LC_MESSAGES/messages.po
	$(BIN)/pybabel compile -f -i $< -o $@

db-up: setup
	$(BIN)/anwang db up

db-down:
	$(BIN)/anwang db down

demo: setup
	$(BIN)/anwang db up
	$(BIN)/anwang demo
	$(BIN)/anwang serve --host $(HOST) --port $(PORT) --simulate $(DEMO_UNITS)

serve: setup
	$(BIN)/anwang serve --host $(HOST) --port $(PORT)

test: setup test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the browser tests: the quick loop while working.
test-fast: setup
	$(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS)

# The quality gates: ruff and mypy on the Python, eslint on the page scripts.
lint: lint-py lint-js

lint-py: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy geo layers

# The front end's rules (eslint.config.js): no markup from data, no eval; runs offline after npm ci.
lint-js: node_modules/.installed
	npx --no-install eslint web/static/js

bench: setup
	@for b in $(filter-out bench/databases.py,$(wildcard bench/*.py)); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	-$(BIN)/anwang db down
	rm -rf $(VENV) node_modules artifacts

# Re-extract the interface strings and merge them into the catalogues (then translate the new ones).
messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F web/babel.cfg -k msg -o web/translations/messages.pot --no-location .
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations --no-fuzzy-matching
