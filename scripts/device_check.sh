#!/usr/bin/env bash
# A short CUDA check of the whole loop on the CIFAR-10 JPEG copy: two LfOSA rounds, ResNet18, bf16.
# Usage (on a GPU machine, from the repository root): scripts/device_check.sh DATA_DIR OUT_DIR
#   DATA_DIR holds materialize.py and cifar10_jpeg.npz (copies of ../shared/data); OUT_DIR receives the run.
set -euo pipefail
DATA=${1:?data folder}
OUT_DIR=${2:?output folder}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning, torchvision; print('torch', torch.__version__, 'lightning', lightning.__version__, 'torchvision', torchvision.__version__)"
time python3 "$DATA/materialize.py" "$DATA" cifar10
time PYTHONUNBUFFERED=1 python3 src/train.py dataset=cifar10 data_dir="$DATA" trainer=gpu mismatch=0.2 \
    al.rounds=2 trainer.max_epochs=10 data.num_workers=8 trainer.enable_progress_bar=false \
    hydra.run.dir="$OUT_DIR/run"
cat "$OUT_DIR/run/metrics.csv"
