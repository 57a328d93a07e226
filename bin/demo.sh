#!/usr/bin/env bash
# The whole flow on generated data: data -> CSVs -> training -> trace -> background removal -> evaluation.
# Run bin/setup.sh first (the README's first command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
logdir=./logs/demo
rm -rf "$logdir" ./out/demo   # the demo's own outputs only

bash bin/download_dataset.sh --synthetic
python bin/prepare_dataset.py --datapath ./data
catalyst-dl run --config configs/demo.yml --logdir "$logdir"
catalyst-dl trace "$logdir"
python bin/car_segmentation.py data/test out/demo "$logdir/trace/traced-best-forward.pth" --save-mask
python bin/make_before_after.py data/test out/demo "$logdir/before_after.png"
python bin/evaluate.py "$logdir/trace/traced-best-forward.pth" --images data/test --masks data/test_masks \
    --csv "$logdir/evaluation.csv" --overlays "$logdir/overlays"
