# Fresh-machine entry points. PyTorch's CPU wheel is installed first, pinned, so pip does not pull
# the multi-gigabyte CUDA build; machines with a GPU can install their own torch beforehand.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: demo test lint test-threads install install-test browser clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .

# torch-fidelity (the maintained InceptionV3 for FID) without its torchvision requirement, which would pull
# a CUDA torch; ganforge imports only its torch-only Inception module. The tests run it randomly initialised.
install-test: $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps "torch-fidelity>=0.4"

# runs/demo is the demo's own scratch run: replaced on each `make demo` so the commands below agree on it.
demo: install
	rm -rf runs/demo
	$(BIN)/ganforge train --out runs/demo
	$(BIN)/ganforge generate runs/demo --n 64 --grid runs/demo/generated.png --out runs/demo/generated
	$(BIN)/ganforge info runs/demo

# The playground's browser tests drive Debian's chromium through its chromedriver; where apt cannot install
# them (no root, no sudo, not Debian) the tests say so and are skipped.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; } || \
	  echo "make: could not install chromium + chromium-driver: the browser tests will be skipped"; }

test: install-test browser lint
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check src tests benchmarks

# The suite again with two torch threads, pinned to one core: no test may depend on the kernels a thread
# count or a core count picks (the default suite runs one thread).
test-threads: install-test
	GANFORGE_TEST_THREADS=2 taskset -c 0 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build src/*.egg-info
