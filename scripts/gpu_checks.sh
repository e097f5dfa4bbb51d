#!/usr/bin/env bash
# The GPU checks of issues 3, 4 and 6 in one prepared run, for a session that is lent a GPU.
#
# A session has about 15 minutes of device time in all (start-up included), so the steps are
# ordered by value and each has its own wall-clock limit. Every training step is stopped by
# SIGTERM at its limit, which makes train-gan write a resumable snapshot; a later session can
# go on with `--resume latest` on the same run folder (bring it back under $OUT).
#
# On the project machine, before the device call: .venv/bin/python scripts/prepare_gpu_data.py
# (UTKFace as a 64x64 zip in gpu_data/, which .git/info/exclude ignores).
#
# Then, with the device tool (carry gpu_data; about 12 minutes of wall time):
#   run(command="bash scripts/gpu_checks.sh", carry=["gpu_data"], timeout_s=590)
#
# What comes back under $OUT: the benchmark logs, the UTKFace run folder (sample grids,
# stats.jsonl, its last snapshot; never commit anything trained on it),
# and the demo generator run (its G_ema may be committed: it is trained on rendered faces only).
#
# Limits per step, in seconds (override by environment): SPEED_S, SYNTH_S, DEMO_S, UTK_S.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PY:-python}"
SPEED_S="${SPEED_S:-120}"
SYNTH_S="${SYNTH_S:-60}"
DEMO_S="${DEMO_S:-180}"
UTK_S="${UTK_S:-180}"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

step() {  # step NAME SECONDS CMD...: run with a SIGTERM at the limit, log to $OUT/NAME.log
    local name="$1" limit="$2"; shift 2
    echo "== $name (limit ${limit} s)"
    timeout -s TERM -k 30 "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "   exit $?; $(tail -n 3 "$OUT/$name.log" | tr '\n' ' ' | cut -c1-300)"
}

# The CUDA tests first: CUDA-only bugs cost the first GPU session a whole call.
step gpu_tests 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests

# Issue 4 item 3: images/s of the 64x64 reference config, and where the time goes.
step train_gan_speed "$SPEED_S" "$PY" benchmarks/train_gan_speed.py --preset h100
# Issue 3 item 6: synthesis vs the generator and vs the straightforward path, 512x512.
step synthesis_speed "$SYNTH_S" "$PY" benchmarks/synthesis_speed.py --device cuda --resolution 512 --images 8 \
    --slow-images 2

# Issue 6 item 2: the demo generator, same architecture as the bundled one (scripts/train_demo_gan.sh),
# so that it can replace it. scripts/gpu_demo_gans.sh does this step better (more training faces,
# wider candidates, measured in docs/DEMO_RESULTS.md).
"$PY" -c "from datasetgan.demo.render import render_dataset; render_dataset('/tmp/demo_faces', 5000, 0, labels=False)" \
    > "$OUT/render.log" 2>&1
step demo_gan "$DEMO_S" "$PY" -m datasetgan.cli train-gan --data /tmp/demo_faces/images --resolution 64 \
    --out "$OUT/demo_gan_run" --kimg 100000 --batch-size 64 --aug none --flip --channel-base 512 --channel-max 128 \
    --map-depth 2 --z-dim 128 --w-dim 128 --tick-kimg 20 --snap-ticks 5 --image-ticks 5 --keep-snapshots 1 \
    --seed 0 --device cuda

# Issue 4 item 4: UTKFace at 64x64, the issue's config (channel base 8192, max 256, mapping 2, batch 256, ADA).
if [ -f gpu_data/utkface64.zip ]; then
    step utkface_gan "$UTK_S" "$PY" -m datasetgan.cli train-gan --data gpu_data/utkface64.zip --resolution 64 \
        --out "$OUT/utk_run" --kimg 100000 --batch-size 256 --aug ada --flip --channel-base 8192 --channel-max 256 \
        --map-depth 2 --tick-kimg 40 --snap-ticks 5 --image-ticks 5 --keep-snapshots 1 --seed 0 --device cuda
else
    echo "== utkface_gan skipped: gpu_data/utkface64.zip not carried (run scripts/prepare_gpu_data.py first)"
fi
du -sh "$OUT"/* 2>/dev/null
