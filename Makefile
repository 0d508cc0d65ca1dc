# The two commands of the README:
#   make book   set up, execute the stale chapters, build the HTML book
#   make test   set up, run all tests (unit tests + nbval on the executed chapters)
# Both create .venv/ with the pinned dependencies on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup execute scoreboard book test unit nbval benchmark gpu-check gpu-check-smoke gpu-wheels clean

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
		--nbval-cell-timeout 900 -p no:cacheprovider --durations=15

unit: setup
	$(BIN)/python -m pytest tests -p no:cacheprovider

benchmark: setup
	$(BIN)/python benchmarks/lingam_speed.py

# Every chapter's GPU check (benchmarks/<slug>_gpu.py) in about 8 minutes on one GPU:
# results/<slug>/gpu.json, which the chapters show, and a summary table.
gpu-check: setup
	$(BIN)/python -m reprobook.gpucheck

# The same checks at toy size on the CPU (runs/gpu-check-smoke/; results/ is untouched).
gpu-check-smoke: setup
	REPROBOOK_PROGRESS=0 $(BIN)/python -m reprobook.gpucheck --smoke

# For a GPU machine with python3, torch and cupy but no network: the wheels of the packages such
# a machine lacks, pinned as here, into .whl/ for benchmarks/gpu_check_lent.sh (python 3.12 there).
GPU_WHEELS := diffusers==0.42.1 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 importlib_metadata==10.2.0
gpu-wheels:
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

clean:
	rm -rf _build runs
