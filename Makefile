# The two commands of the README:
#   make book   set up, execute the stale chapters, build the HTML book
#   make test   set up, run all tests (unit tests + nbval on the executed chapters)
# Both create .venv/ with the pinned dependencies on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup execute scoreboard book test unit nbval benchmark clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@echo "== setting up $(VENV) (pinned dependencies, a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

execute: setup
	@echo "== executing stale chapters (cpu preset)"
	$(BIN)/reprobook execute

scoreboard: setup
	$(BIN)/reprobook scoreboard

book: execute
	@echo "== building the HTML book"
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "== the book is at _build/html/index.html"

test: setup
	REPROBOOK_PROGRESS=0 $(BIN)/python -m pytest tests book/chapters \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout 900 -p no:cacheprovider

unit: setup
	$(BIN)/python -m pytest tests -p no:cacheprovider

benchmark: setup
	$(BIN)/python benchmarks/lingam_speed.py

clean:
	rm -rf _build runs
