#!/usr/bin/env bash
# Trains the bundled demo generator on, with a fresh discriminator (its own D and optimiser state were
# not kept), and writes the result over src/datasetgan/assets/demo_generator.
#
# 1. Render the same 5,000 unlabelled training faces as scripts/train_demo_gan.sh (seeds 0-4999).
# 2. `train-gan --init-generator` starts G and G_ema from the generator given as $1; D starts fresh
#    and trains alone for the first 4 kimg (--freeze-g-kimg 4), then both train as in
#    scripts/train_demo_gan.sh (same architecture, batch 16, mirror, no augmentation).
# 3. Write the last snapshot's G_ema in the own format into the package.
#
# Usage: scripts/finetune_demo_gan.sh FROM_GENERATOR [KIMG]
# Stop it early with SIGTERM (kill PID): it writes a snapshot first, and step 3 can be run by hand:
#   .venv/bin/datasetgan convert RUNS/00000-images-64 src/datasetgan/assets/demo_generator --overwrite
set -euo pipefail
cd "$(dirname "$0")/.."
FROM="$1"
KIMG="${2:-400}"
DATA="${DATA:-/tmp/demo_faces}"
RUNS="${RUNS:-/tmp/demo_gan_ft}"
BIN="${BIN:-.venv/bin}"

[ -d "$DATA/images" ] || "$BIN/python" -c "from datasetgan.demo.render import render_dataset; render_dataset('$DATA', 5000, 0, labels=False)"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" nice -n 5 "$BIN/datasetgan" train-gan \
    --data "$DATA/images" --resolution 64 --out "$RUNS" --kimg "$KIMG" --batch 16 --aug none --mirror \
    --channel-base 512 --channel-max 128 --map-depth 2 --z-dim 128 --w-dim 128 \
    --tick-kimg 1 --snap-ticks 4 --image-ticks 2 --keep-snapshots 3 --seed 0 --device cpu \
    --init-generator "$FROM" --freeze-g-kimg 4
RUN="$(ls -d "$RUNS"/*/ | sort | tail -n 1)"
"$BIN/datasetgan" convert "$RUN" src/datasetgan/assets/demo_generator --overwrite
