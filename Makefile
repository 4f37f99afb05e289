# dynsplat-ns developer commands. Everything runs on CPU; CUDA users get gsplat's kernels automatically.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.dynsplat-installed
export TORCHDYNAMO_DISABLE ?= 1
export PYTHONDONTWRITEBYTECODE ?= 1

.PHONY: install system-deps test lint demo bench clean

install: $(STAMP)  ## create .venv and install the project (editable) with dev tools

# open3d (imported by ns-export) needs libusb-1.0; install it with apt when missing and we may (root).
system-deps:
	@ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; }; \
	  else echo "warning: libusb-1.0 missing (ns-export needs it): sudo apt-get install libusb-1.0-0"; fi; }

$(STAMP): pyproject.toml | system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision: the pair that installs on CPU-only machines here; CUDA users may bring their own build.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install  ## run the test suite (CPU, no network); installs Debian chromium for the browser test where it can
	@sh scripts/install_chromium.sh
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check dynsplat_ns dataparsers method_configs tests examples benchmarks

demo: install  ## generate a moving-spheres scene, train dynsplat-4dgs on CPU, eval, render, export
	PATH=$(abspath $(BIN)):$$PATH bash examples/demo.sh

bench: install
	$(BIN)/python benchmarks/rasterizer.py

clean:
	rm -rf outputs demo_outputs .pytest_cache
