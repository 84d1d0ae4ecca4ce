#!/usr/bin/env bash
# Every strategy x mismatch x seed on one dataset, PARALLEL Hydra multiruns at a time (made for a GPU
# machine with many CPU cores); the runs' records are packed into OUT_DIR/grid.tgz at the end.
# Usage: scripts/strategy_grid.sh DATA_DIR OUT_DIR PARALLEL [override ...]
#   e.g. scripts/strategy_grid.sh /data /tmp/out 12 dataset=mnist trainer=gpu
# GRID_MISMATCH, GRID_SEEDS, GRID_STRATEGIES and GRID_TIME_LIMIT (seconds) narrow it.
set -uo pipefail
DATA=${1:?data folder}; OUT_DIR=${2:?output folder}; PARALLEL=${3:-4}; shift 3
MISMATCH=${GRID_MISMATCH:-0.2 0.3 0.4}
SEEDS=${GRID_SEEDS:-1,2,3}
STRATEGIES=${GRID_STRATEGIES:-$(ls conf/strategy | sed 's/\.yaml$//' | tr '\n' ' ')}
export PYTHON=${PYTHON:-python3} OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR/grid" "$OUT_DIR/logs"
for m in $MISMATCH; do for s in $STRATEGIES; do echo "$m $s"; done; done |
  timeout "${GRID_TIME_LIMIT:-36000}" xargs -P "$PARALLEL" -L 1 bash -c '
    ${PYTHON:-python3} src/train.py -m data_dir="'"$DATA"'" mismatch=$0 strategy=$1 seed='"$SEEDS"' logger=none \
      trainer.enable_progress_bar=false hydra.sweep.dir="'"$OUT_DIR"'/grid/mismatch$0_$1" '"$*"' \
      > "'"$OUT_DIR"'/logs/mismatch$0_$1.log" 2>&1 || echo "FAILED mismatch$0 $1"'
echo "finished: $(find "$OUT_DIR/grid" -name summary.json | wc -l) runs"
(cd "$OUT_DIR" && find grid -name metrics.csv -o -name summary.json -o -name config.yaml | tar czf grid.tgz -T -)
