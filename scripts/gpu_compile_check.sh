#!/usr/bin/env bash
# Second GPU measurement of docs/benchmarks.md: steady-state epoch times (plain PyTorch, Lightning, torch.compile,
# fp32) on 10,000 CIFAR-10 images, then the paper protocol's first two queries with torch.compile.
# Usage (on the GPU machine, from the repository root): scripts/gpu_compile_check.sh DATA_DIR OUT_DIR
set -uo pipefail
DATA=${1:?data folder}
OUT_DIR=${2:?output folder}
mkdir -p /tmp/osal-data "$OUT_DIR"
[ -d /tmp/osal-data/cifar10 ] || python3 "$DATA/materialize.py" /tmp/osal-data cifar10
export PYTHONUNBUFFERED=1
timeout 220 python3 benchmarks/fit_overhead.py --dataset cifar10 --data-dir /tmp/osal-data --trainer gpu \
    --labeled 10000 --epochs 6 --repeats 1 --variant compiled=model.compile=true \
    --variant fp32=trainer.precision=32-true \
    --variant compiled_cudagraphs=model.compile=true,+model.compile_options.mode=reduce-overhead
timeout 180 python3 src/train.py dataset=cifar10 data_dir=/tmp/osal-data mismatch=0.2 strategy=lfosa trainer=gpu \
    seed=1 al.rounds=2 trainer.max_epochs=100 model.compile=true trainer.enable_progress_bar=false \
    hydra.run.dir=/tmp/osal-runs/protocol_compiled
cp /tmp/osal-runs/protocol_compiled/metrics.csv "$OUT_DIR/protocol_compiled_metrics.csv"
