#!/usr/bin/env bash
# The paper-protocol timing of docs/benchmarks.md on one CUDA GPU: CIFAR-10 (JPEG copy), mismatch 0.2, LfOSA,
# ResNet18, 100 epochs per fit; batched against per-sample data path, and torch.compile.
# Usage (on the GPU machine, from the repository root): scripts/paper_protocol_gpu.sh DATA_DIR OUT_DIR [args...]
#   DATA_DIR holds materialize.py and cifar10_jpeg.npz (copies of ../shared/data); extra args go to
#   benchmarks/paper_protocol.py (e.g. --timeout 200 --no-compile).
set -euo pipefail
DATA=${1:?data folder}
OUT_DIR=${2:?output folder}
shift 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning, torchvision; print('torch', torch.__version__, 'lightning', lightning.__version__, 'torchvision', torchvision.__version__)"
mkdir -p /tmp/osal-data "$OUT_DIR"
[ -d /tmp/osal-data/cifar10 ] || python3 "$DATA/materialize.py" /tmp/osal-data cifar10
RUNS=/tmp/osal-runs  # the runs' directories stay here; their tables and the report are copied to OUT_DIR
PYTHONUNBUFFERED=1 python3 benchmarks/paper_protocol.py --data-dir /tmp/osal-data --out "$RUNS" --python python3 "$@"
cp "$RUNS/paper_protocol.md" "$OUT_DIR/"
for run in "$RUNS"/*/; do cp "$run/metrics.csv" "$OUT_DIR/$(basename "$run")_metrics.csv" 2>/dev/null || true; done
