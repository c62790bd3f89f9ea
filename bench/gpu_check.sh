#!/usr/bin/env bash
# The one prepared GPU check, sized to a few minutes of a lent device (docs/PERFORMANCE.md).
#
#   here:            make gpu-wheels           (captum and the offline model as wheels, into .whl/)
#   on the device:   bash bench/gpu_check.sh   (carry .whl; reports go to $OUT, else gpu-out/)
#
# 1. tests/test_cuda.py: GPU maps against CPU maps for every method, the metric, the memory budget.
# 2. bench/roofline.py on resnet50 (random weights): limit and achieved/limit of every stage.
# 3. bench/speed_modes.py: --amp / --channels_last against fp32, LA 20/20/20 on the offline sample.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $PY -c "import torch; print('torch', torch.__version__)"; } \
    | tee "$OUT/card.txt"
$PY generate_pt.py --sample --png_dir /tmp/gpu-check/png --out_dir /tmp/gpu-check/data > /dev/null
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.txt"
timeout 240 $PY bench/roofline.py --model resnet50 --weights random --device cuda --images 32 \
    --data_dir /tmp/gpu-check/none 2>&1 | tee "$OUT/roofline_resnet50.md"
timeout 150 $PY bench/speed_modes.py --device cuda --data_dir /tmp/gpu-check/data 2>&1 | tee "$OUT/speed_modes.md"
