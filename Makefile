# Quick start on a fresh machine:  make demo   then   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo runs LA at a point of the paper's grid that finishes in minutes on a laptop CPU;
# `make demo DEMO_ITER=20 DEMO_SAMPLES=20` runs the paper's default setting.
DEMO_MODEL ?= efficientnet_lite0
DEMO_RANGE ?= 20
DEMO_ITER ?= 10
DEMO_SAMPLES ?= 10
LA_ARGS = --model $(DEMO_MODEL) --attr_method la --spatial_range $(DEMO_RANGE) --max_iter $(DEMO_ITER) --sampling_times $(DEMO_SAMPLES)

.PHONY: setup demo test test-slow class-index clean

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: setup
	$(BIN)/python generate_pt.py
	$(BIN)/python generate_attributions.py $(LA_ARGS)
	$(BIN)/python eval.py $(LA_ARGS)
	$(BIN)/python plot.py heatmaps $(LA_ARGS)
	$(BIN)/python plot.py grid --model $(DEMO_MODEL) --spatial_range $(DEMO_RANGE) --max_iter $(DEMO_ITER) --sampling_times $(DEMO_SAMPLES)
	$(BIN)/python plot.py curves --model $(DEMO_MODEL)
	@echo; cat results.csv

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

class-index: setup
	$(BIN)/python utils.py class-index

clean:
	rm -rf attributions scores figures results.csv results.csv.lock data/*.pt
