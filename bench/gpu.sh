#!/usr/bin/env bash
# The checks of one lease of a CUDA machine that has no network (see docs/RESULTS.md): the
# CUDA tests of the image models' data path and numerics, then the embedding and density
# benches. Python packages missing there travel as wheels in .whl/ (open_clip_torch, ftfy,
# wcwidth); results go to $OUT (default /tmp/gpu-out).
#
# Before the lease, on the development machine (.whl/ is git-ignored, so name it in the
# device tool's carry):
#   .venv/bin/pip download --no-deps -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
#
# Usage: bash bench/gpu.sh
set -u
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, open_clip; print('torch', torch.__version__, 'timm',
timm.__version__, 'open_clip', open_clip.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts="-ra" -o filterwarnings=ignore \
    tests/test_accel.py tests/embeddings/test_biomedclip_reference.py \
    tests/classifiers/test_convnext_inference.py tests/classifiers/test_learning.py 2>&1 \
    | tee "$OUT/tests.txt" | tail -12
timeout 240 python3 bench/embed.py --images 512 --rounds 3 --files 512 --skip-mias 2>&1 \
    | grep -v "huggingface.co\|Retrying" | tee "$OUT/embed.txt"
timeout 240 python3 bench/classify.py --images 1024 --archs convnext_atto,convnext_tiny \
    --sizes 224 2>&1 | tee "$OUT/classify.txt"
