#!/usr/bin/env bash
# One GPU window of the reproduction campaign (docs/measurements/campaigns/reproduce_cifar10), run on the lent
# GPU machine from the repository root; the campaign comes back as $OUT/campaign.tgz to unpack and commit here.
#
# Prepared here (the GPU machine has no network and lacks hydra-core / omegaconf):
#   echo /.whl/ >> .git/info/exclude; echo /.devdata/ >> .git/info/exclude      # both are git-ignored already
#   mkdir -p .devdata && cp ../shared/data/materialize.py ../shared/data/cifar10_jpeg.npz .devdata/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3                # no wheel on PyPI
# Then, with the device tool: run(command="scripts/gpu_window.sh 480 [packing]", carry=[".whl", ".devdata"],
#   timeout_s=600); here: tar xzf /work/.device/.../campaign.tgz && python src/campaign.py status <dir>.
# SECONDS is the campaign's window (keep it a minute or two under timeout_s: set-up and packing come first);
# "packing" first measures benchmarks/packing.py (about 3 minutes) into $OUT/packing.txt.
set -euo pipefail
WINDOW=${1:?seconds for the campaign}
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
if [ "${2:-}" = packing ]; then
    python3 benchmarks/packing.py --data-dir /tmp/osal-data --concurrency 1,2,4,8 --modes eager,reduce-overhead \
        | tee "$OUT/packing.txt"
fi
python3 src/campaign.py run "$CAMPAIGN" experiment=reproduce_cifar10 --seconds "$WINDOW" --data-dir /tmp/osal-data \
    | tee "$OUT/window.txt"
tar czf "$OUT/campaign.tgz" --exclude=.osal.lock "$CAMPAIGN"
