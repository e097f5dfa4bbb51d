#!/usr/bin/env bash
# Reproduces the demo generator bundled until 2026-12-04 (the CPU-only one). The one bundled now was
# started on a GPU: scripts/gpu_demo_gans.sh run A (347.2 kimg), then
# `datasetgan train-gan --resume latest --out RUNS --device cpu` to 812.9 kimg (docs/DEMO.md).
#
# 1. Render 5,000 unlabelled training faces (seeds 0-4999) with the demo's
#    procedural renderer. Labels are not written: the GAN never sees any.
# 2. Train a small 64x64 StyleGAN2 with `datasetgan train-gan` on the CPU
#    (no GPU was available): channel base 512, channel max 128 (128-64-32-16-8
#    channels at 4-8-16-32-64 px), z/w 128, mapping depth 2, batch 16, mirror,
#    no augmentation (the procedural set is large and not at risk of D overfitting).
# 3. Write the last snapshot's G_ema in the own format into the package.
#
# The bundled generator is G_ema after 244.928 kimg (15,308 steps of batch 16) on the shared 2-core
# CPU, all on 2026-11-25, in one run folder resumed with --resume latest several times:
#   0 -> 49.84 kimg, 1 thread (about 85 minutes; interrupted once at 0.608 and resumed);
#   49.84 -> 96.688 kimg, 2 threads (13 minutes at about 50 img/s), stopped by SIGTERM;
#   96.688 -> 187.616 kimg, 1 thread beside other jobs (about 100 minutes at 12-36 img/s), stopped by
#   SIGTERM, which writes the snapshot;
#   187.616 -> 244.928 kimg, 1 thread (about 40 minutes), stopped by SIGTERM.
# Between 96 and 187 kimg the samples went from blobs with speckles to faces with eyes, brows and
# mouths. Thread counts change float rounding, so a re-run reproduces it closely, not bit for bit. A
# GPU and more kimg would give a much better generator (scripts/gpu_checks.sh trains one).
# A fresh run of this recipe with --compile and OMP_NUM_THREADS=2 (2026-12-02, 307.3 kimg in 108 minutes at
# 51-57 img/s) gave sharper samples and better interpreter labels but a smaller demo gain (+1.2: the
# baseline's 16 samples improved more); see docs/DEMO_RESULTS.md. It was not bundled.
#
# Usage: scripts/train_demo_gan.sh [KIMG]   (default 244.928, the bundled generator's length)
set -euo pipefail
cd "$(dirname "$0")/.."
KIMG="${1:-244.928}"
DATA="${DATA:-/tmp/demo_faces}"
RUN="${RUN:-/tmp/demo_gan_run}"      # the run folder; started again, the script resumes it
BIN="${BIN:-.venv/bin}"

"$BIN/python" -c "from datasetgan.demo.render import render_dataset; render_dataset('$DATA', 5000, 0, labels=False)"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" nice -n 10 "$BIN/datasetgan" train-gan \
    --data "$DATA/images" --resolution 64 --out "$RUN" --kimg "$KIMG" --batch-size 16 --aug none --flip \
    --channel-base 512 --channel-max 128 --map-depth 2 --z-dim 128 --w-dim 128 \
    --tick-kimg 1 --snap-ticks 4 --image-ticks 2 --keep-snapshots 3 --seed 0 --device cpu
"$BIN/datasetgan" convert "$RUN" src/datasetgan/assets/demo_generator --overwrite
