#!/usr/bin/env bash
# Issue 6 item 2 on a lent GPU: three candidate demo generators, trained side by side on one GPU
# in one short device call, so that the demo can be re-measured with each on the CPU afterwards.
#
#   A  the bundled generator's architecture (channel base 512, max 128: 128-64-32-16-8 channels at
#      4-64 px, z/w 128): a drop-in replacement, same CPU cost in the demo;
#   B  twice the channels (base 1024, max 256, z/w 256): interpreter features twice as wide;
#   C  base 2048, max 256 (256-256-128-64-32 channels).
# All: mapping depth 2, batch 64, mirror, no augmentation, float32 (TF32) arithmetic, seed 0.
# The training faces are 30,000 renders (seeds 0-29999; the demo's test faces start at seed
# 1,000,000); the GAN never sees a label.
#
# Each run is stopped by SIGTERM at a common deadline, which makes train-gan write a resumable
# snapshot; snapshots are also written every ~1.5 minutes. What comes back under $OUT (the device
# tool returns at most 8 files of 16 MiB): logs.tar (logs, stats.jsonl, options, sample grids),
# A_gema.tar, B_gema.tar, C_gema.tar (G_ema + state.json of the newest snapshots) and A_full.tar
# (run A's newest snapshot, complete, to resume from).
#
# First used 2026-12-04 (one H200): A 347.2, B 312.6 and C 232.6 kimg in 7.5 minutes, three runs sharing
# the GPU; none beat the CPU-trained generator of then in the demo, but A continued on the CPU to 812.9
# kimg is the bundled one now (docs/DEMO_RESULTS.md). Next time train one run alone (RUNS=C: its
# features labelled best; or RUNS=B) for the whole call.
#
# Usage, with the device tool:  run(command="bash scripts/gpu_demo_gans.sh", timeout_s=590)
# To continue run A from the snapshot A_full.tar brought back:  mkdir -p gpu_data/run_A/snapshots,
# untar it there (gpu_data/ is ignored; carry it), then  run(command="RUNS=A STOP_AT=170 bash
# scripts/gpu_demo_gans.sh", carry=["gpu_data"], timeout_s=220)
# STOP_AT (seconds after the start, default 510) is when the runs get SIGTERM.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUT="${OUT:-/tmp/gpu_out}"
WORK="${WORK:-/tmp/demo_gans}"
STOP_AT="${STOP_AT:-510}"
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"          # cpu for a dry run of this script
PER_PROC="${PER_PROC:-2000}"     # faces per render process (15 processes)
RUNS="${RUNS:-A B C}"             # which of the three to train
RESUME="${RESUME:-gpu_data}"     # run_A/ etc. here (a run folder with its snapshot) are continued
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK/logs"
elapsed() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$WORK/logs/gpu.txt" 2>&1
"$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available())" >> "$WORK/logs/gpu.txt" 2>&1

# The CUDA tests (-m gpu) first, beside the rendering: the first GPU session lost a call to a CUDA-only
# bug that tests/gan_training/test_gpu.py would have shown. Their summary is printed after the rendering.
if [ "${GPU_TESTS:-1}" = 1 ]; then
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests \
        > "$WORK/logs/gpu-tests.log" 2>&1 &
fi
# 30,000 faces in 15 processes of 2,000 (PER_PROC).
for i in $(seq 0 14); do
    "$PY" -c "from datasetgan.demo.render import render_dataset; render_dataset('$WORK/faces', $PER_PROC, $((i * PER_PROC)), labels=False, show_progress=False)" \
        > "$WORK/logs/render-$i.log" 2>&1 &
done
wait
echo "rendered $(ls "$WORK/faces/images" | wc -l) faces at $(elapsed) s; CUDA tests: $(tail -n 1 "$WORK/logs/gpu-tests.log" 2>/dev/null)"

LIMIT=$(( STOP_AT - $(elapsed) ))
launch() {  # launch NAME BASE MAX ZW; the run folder $RESUME/run_NAME is continued (the same --out resumes)
    local name="$1" base="$2" max="$3" zw="$4"
    case " $RUNS " in *" $name "*) ;; *) return ;; esac
    if [ -d "$RESUME/run_$name" ]; then
        mkdir -p "$WORK/run_$name" && cp -r "$RESUME/run_$name"/. "$WORK/run_$name"/
    fi
    OMP_NUM_THREADS=4 timeout -s TERM -k 60 "$LIMIT" "$PY" -m datasetgan.cli train-gan \
        --data "$WORK/faces/images" --resolution 64 --out "$WORK/run_$name" \
        --kimg 100000 --batch-size 64 --aug none --flip --channel-base "$base" --channel-max "$max" --map-depth 2 \
        --z-dim "$zw" --w-dim "$zw" --precision float32 --tick-kimg 10 --snap-ticks 100000 --snap-minutes 1.5 \
        --image-ticks 10 --keep-snapshots 0 --metrics none --seed 0 --device "$DEVICE" \
        > "$WORK/logs/train-$name.log" 2>&1 &
}
launch A 512 128 128
launch B 1024 256 256
launch C 2048 256 256
sleep 60
nvidia-smi > "$WORK/logs/nvidia-smi-60s.txt" 2>&1
for name in $RUNS; do echo "$name: $(tail -n 1 "$WORK/logs/train-$name.log" | cut -c1-200)"; done
wait
echo "training stopped at $(elapsed) s"
for name in $RUNS; do echo "$name: $(grep -c '^tick' "$WORK/logs/train-$name.log") ticks; $(tail -n 2 "$WORK/logs/train-$name.log" | tr '\n' ' ' | cut -c1-300)"; done

# Package: G_ema of the newest snapshots (as many as fit 16 MiB), A's newest snapshot in full.
newest_run() { [ -d "$WORK/run_$1/snapshots" ] && echo "$WORK/run_$1"; }  # newest_run NAME: its run folder, if any
pack_gema() {  # pack_gema NAME KEEP
    local run snaps
    run="$(newest_run "$1")"
    [ -n "$run" ] || return
    snaps="$(cd "$run/snapshots" && ls -d kimg-* | sort | tail -n "$2" | sed 's|$|/G_ema|; p; s|/G_ema$|/state.json|' )"
    (cd "$run/snapshots" && tar -cf "$OUT/$1_gema.tar" $snaps)
}
pack_gema A 4
pack_gema B 2
pack_gema C 1
RUN_A="$(newest_run A)"
if [ -n "$RUN_A" ]; then
    LAST_A="$(cd "$RUN_A/snapshots" && ls -d kimg-* | sort | tail -n 1)"
    (cd "$RUN_A/snapshots" && tar -cf "$OUT/A_full.tar" "$LAST_A")
fi
for name in A B C; do
    run="$(newest_run "$name")"
    [ -n "$run" ] || continue
    mkdir -p "$WORK/logs/$name"
    cp "$run"/stats.jsonl "$run"/training_options.json "$run"/reals.png "$WORK/logs/$name/" 2>/dev/null
    ls "$run"/fakes-*.png | sort | tail -n 3 | xargs -I{} cp {} "$WORK/logs/$name/"
done
(cd "$WORK" && tar -cf "$OUT/logs.tar" logs)
ls -la "$OUT"
echo "done at $(elapsed) s"
