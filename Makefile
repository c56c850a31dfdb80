# Qorgau — the two commands a newcomer needs:
#   make demo   install into .venv and run the whole system on embedded defaults
#   make test   install into .venv and run linters, type checks and the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo up test lint pytest bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11+); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# grafana-client needs niquests, whose urllib3-future wheel replaces urllib3 itself at every
	@# interpreter start (a .pth hook), under requests, pywebpush and apprise; built from its
	@# source with URLLIB3_NO_OVERRIDE it keeps to its own urllib3_future package.
	URLLIB3_NO_OVERRIDE=1 $(BIN)/python -m pip install --quiet --no-binary=urllib3-future -e ".[embedded,dev]"
	@touch $@

demo: install
	$(BIN)/qorgau demo

up: install
	$(BIN)/qorgau up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: install
	$(BIN)/python -m pytest

test: lint pytest

# Benchmarks print figures; they are not part of `make test`.
bench: install
	$(BIN)/qorgau bench --models --readings 100000
	$(BIN)/qorgau bench --detection --readings 200000
	$(BIN)/qorgau bench --readings 150000 --batch 1 50
	$(BIN)/qorgau bench --readings 100000 --batch 1 --rate 5000
	$(BIN)/qorgau bench --readings 200000 --batch 50 --rate 25000
	$(BIN)/qorgau bench --alerts --readings 0 --rate 5000 --batch 1
	$(BIN)/qorgau bench --alerts --readings 0 --rate 20000 --batch 50
	$(BIN)/qorgau bench --app
	$(BIN)/qorgau bench --wall 2000

clean:
	rm -rf $(VENV) .qorgau .pytest_cache .mypy_cache .ruff_cache *.egg-info
