# Every target creates the virtual environment it needs, so a fresh clone
# only ever runs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test bench stress lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test,dask]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test,bench,dask]'
	touch $@

demo: $(STAMP)
	$(BIN)/imgconv apply -k sharpen 'sample_images/*.png' -o 'out/{stem}-sharpen.png'
	$(BIN)/imgconv apply -k gaussian5 -k edge3 --range abs sample_images/camera.png out/camera-gauss-edges.png
	$(BIN)/imgconv apply -k unsharp5 sample_images/chelsea-alpha.png out/chelsea-unsharp.png
	$(BIN)/imgconv apply -k emboss --color gray sample_images/coffee.png out/coffee-emboss-gray.png
	$(BIN)/imgconv apply -k sobel-x --range abs sample_images/astronaut-gray16.png out/astronaut-sobel16.png
	$(BIN)/imgconv maxpool --size 2 sample_images/coffee.png out/coffee-maxpool2.png
	$(BIN)/imgconv features sample_images/camera.png -o out/camera-features.png --kernels edge1,sobel-x,sobel-y,laplacian --relu --pool 2
	@echo "demo: filtered images written to out/"

test: lint
	$(BIN)/python -m pytest -q

# Measurements, not tests: see benchmarks/README.md.  BENCH_QUICK=1 for a
# smoke run, BENCH_ARGS='--case throughput' for one case.
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The README's pictures, drawn by scripts from imgconv's own results.
docs: $(STAMP)
	$(BIN)/python docs/linear_blur.py

# Minutes, not seconds: the long reliability checks (tests/stress/README.md).
stress: $(STAMP)
	$(BIN)/python tests/stress/memory_limit.py
	$(BIN)/python tests/stress/signals.py
	$(BIN)/python tests/stress/kill9.py
	$(BIN)/python tests/stress/suite_under_load.py

# ruff (lint and format) over the package and its tests, mypy over the
# package, with the settings in pyproject.toml; any finding fails the target.
lint: $(STAMP)
	$(BIN)/ruff check imgconv tests
	$(BIN)/ruff format --check imgconv tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out
