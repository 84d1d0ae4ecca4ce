#!/usr/bin/env bash
# One GPU window of the reproduction campaign (docs/measurements/campaigns/reproduce_cifar10), run on the lent
# GPU machine from the repository root; the campaign comes back as $OUT/campaign.tgz to unpack and commit here.
#
# Prepared here (the GPU machine has no network and lacks hydra-core, omegaconf and finch-clust, which
# osal.clustering imports; without it no module loads):
#   echo /.whl/ >> .git/info/exclude; echo /.devdata/ >> .git/info/exclude      # both are git-ignored already
#   mkdir -p .devdata && cp ../shared/data/materialize.py ../shared/data/cifar10_jpeg.npz .devdata/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1 finch-clust==0.2.3
#   python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3                # no wheel on PyPI
# Then, with the device tool: run(command="scripts/gpu_window.sh 555 [packing] [mmap]", carry=[".whl", ".devdata"],
#   timeout_s=600); here: tar xzf /work/.device/.../campaign.tgz && python src/campaign.py status <dir>.
# SECONDS is the whole window after set-up (keep it a minute under timeout_s); "packing" first measures
# benchmarks/packing.py (about 2-3 minutes, taken out of the window) into $OUT/packing.txt and .json, and runs the
# campaign with the runs at once it found best; without it, PER_GPU (default 4) runs at once. "mmap" first times one
# CIFAR-10 round on the GPU with the images in memory and read a batch at a time from the decode cache
# (data.memory_budget=1e6: what the path for pools larger than memory costs there) into $OUT/mmap.txt (~3 min).
set -euo pipefail
WINDOW=${1:?seconds for the campaign}
END=$((SECONDS + WINDOW))
CAMPAIGN=docs/measurements/campaigns/reproduce_cifar10
OUT=${OUT:-/tmp/osal-out}
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
mkdir -p /tmp/osal-data
[ -d /tmp/osal-data/cifar10 ] || python3 .devdata/materialize.py /tmp/osal-data cifar10
PER_GPU=${PER_GPU:-4}
if [[ " ${*:2} " == *" mmap "* ]]; then
    for budget in null 1000000; do   # the first run also fills the decode cache; the comparison is of fit_s
        timeout 170 python3 src/train.py dataset=cifar10 data_dir=/tmp/osal-data trainer=gpu al.rounds=1 \
            trainer.max_epochs=10 data.num_workers=8 logger=none trainer.enable_progress_bar=false fresh=true \
            data.memory_budget=$budget hydra.run.dir=/tmp/osal-mmap-$budget 2>&1 | tail -4 | sed "s/^/budget=$budget: /" \
            | tee -a "$OUT/mmap.txt" || true
    done
fi
if [[ " ${*:2} " == *" packing "* ]]; then
    # cut short at 180 s: the rows measured by then are kept in the JSON, and the campaign gets the rest
    timeout 180 python3 benchmarks/packing.py --data-dir /tmp/osal-data --concurrency 1,2,4,8 --modes eager,reduce-overhead \
        --epochs "${PACKING_EPOCHS:-4}" --json "$OUT/packing.json" | tee "$OUT/packing.txt" || true
    # the campaign's runs are eager (experiment=reproduce_cifar10): the fewest eager runs at once within 10% of
    # the best eager aggregate rate
    [ -f "$OUT/packing.json" ] && PER_GPU=$(python3 -c "import json; r=[x for x in json.load(open('$OUT/packing.json'))['rows'] if x['mode']=='eager']
best=max(x['aggregate'] for x in r); print(min(x['count'] for x in r if x['aggregate']>=0.9*best))")
fi
WINDOW=$((END - SECONDS))
echo "runs at once per GPU: $PER_GPU; campaign window: $WINDOW s"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 > "$OUT/gpu_use.csv" &
# only CIFAR-10 travels: Tiny-ImageNet's copy (113 MB) is larger than a call may carry (64 MiB), so its runs wait
python3 src/campaign.py run "$CAMPAIGN" experiment=reproduce_cifar10 --seconds "$WINDOW" --data-dir /tmp/osal-data \
    --per-gpu "$PER_GPU" --only dataset=cifar10 | tee "$OUT/window.txt"
kill %1 || true
# logs committed in the repository show paths relative to it, not this machine's checkout
find "$CAMPAIGN" \( -name '*.log' -o -path '*/.hydra/*.yaml' \) -exec sed -i "s|$PWD/||g; s|$PWD|.|g" {} +
tar czf "$OUT/campaign.tgz" --exclude=.osal.lock "$CAMPAIGN"
