#!/usr/bin/env bash
# The training study and the arena on one GPU, one process per row or method, all at once.
#
# One ISNet step of DenseNet121 at batch 32 is launch-bound on a GPU (thousands of small kernels;
# ~240 ms on an H200), so many single-threaded processes share one GPU far better than one
# process runs them in turn. Every process stops training after $BUDGET seconds (the row is then
# evaluated and marked "stopped") and writes its JSON after each epoch.
#
#   STUDY="standard isnet_separate" ARENA="rrr gain" BUDGET=400 OUT=results/gpu \
#       bash scripts/study_on_gpu.sh
#   STUDY= ARENA="standard selective" ARENA_EXTRA="--isnet-recipe bundled" bash scripts/study_on_gpu.sh
#
# The arena methods train with the engine's defaults (joint clipping at 10; the first H200 run's
# separate clipping let every ISNet variant learn the mark, docs/training-isnet.md). Two or
# three processes share the GPU well (~18 s per DenseNet121 ISNet epoch each on an H200); 26 did
# not; nine arena methods (STUDY= ARENA="standard selective rrr gain unet_segment unet_multitask
# vit ag_sononet ham") completed 15 epochs each in 441 s together. On a bare device, captum is missing: carry .whl and install it to a folder on PYTHONPATH.
#
# Needs the Fashion-MNIST IDX files in $ROOT (default .data/fashion-mnist). Writes into $OUT:
# study.tar.gz (row JSONs, study.md, study.png, logs), arena.tar.gz (method JSONs, logs),
# partial.tar.gz (both, refreshed every 20 s while the processes run) and the
# float16 checkpoints named in $KEEP, split into 15 MiB parts (cat them back together).
set -u
OUT=${OUT:-results/gpu}
ROOT=${ROOT:-.data/fashion-mnist}
BUDGET=${BUDGET:-400}
HARD=${HARD:-$((BUDGET + 150))}
STUDY=${STUDY-standard ceiling_unbiased isnet_clip1 isnet_separate}
ARENA=${ARENA:-}
KEEP=${KEEP:-}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}        # more training_study options (e.g. --epochs 1 for a smoke run)
ARENA_EXTRA=${ARENA_EXTRA:-}
WORK=$(mktemp -d)
mkdir -p "$OUT" "$WORK/study" "$WORK/arena" "$WORK/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
start=$(date +%s)
pids=()
for row in $STUDY; do
    $PYTHON -m scripts.training_study --out-dir "$WORK/study" --device "$DEVICE" --rows "$row" \
        --root "$ROOT" --threads 1 --budget-s "$BUDGET" --save $EXTRA >"$WORK/logs/$row.log" 2>&1 &
    pids+=($!)
done
for method in $ARENA; do
    $PYTHON -m benchmarks.arena --methods "$method" --device "$DEVICE" --threads 1 --size 64 \
        --train-limit 2000 --test-limit 1000 --epochs 15 --lr 0.05 --schedule cosine $ARENA_EXTRA \
        --root "$ROOT" --out-dir "$WORK/arena" --half \
        --budget-s "$BUDGET" >"$WORK/logs/arena_$method.log" 2>&1 &
    pids+=($!)
done
while :; do
    running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
    elapsed=$(($(date +%s) - start))
    echo "t=${elapsed}s running=$running $(nvidia-smi --query-gpu=utilization.gpu,memory.used \
        --format=csv,noheader 2>/dev/null)"
    # what has finished so far, packed every round: a command stopped at its time limit still
    # returns it (the final archives are written only after the last process)
    cp "$WORK"/logs/*.log "$WORK/study/" 2>/dev/null
    tar --exclude='*.safetensors' -czf "$OUT/partial.tar.gz.tmp" -C "$WORK" study arena \
        && mv "$OUT/partial.tar.gz.tmp" "$OUT/partial.tar.gz"
    [ "$running" -eq 0 ] && break
    if [ "$elapsed" -ge "$HARD" ]; then
        echo "hard limit: killing $running processes"
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
        break
    fi
    sleep 20
done
$PYTHON -m scripts.training_study --out-dir "$WORK/study" --summarize || true
for log in "$WORK"/logs/*.log; do echo "== $log"; tail -n 3 "$log"; done
cp "$WORK"/logs/*.log "$WORK/study/" 2>/dev/null
tar --exclude='*.safetensors' -czf "$OUT/study.tar.gz" -C "$WORK" study
tar --exclude='*.safetensors' -czf "$OUT/arena.tar.gz" -C "$WORK" arena
best=$($PYTHON - "$WORK/study" <<'PY'
import json, pathlib, sys
rows = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("isnet_*.json")]
rows = [r for r in rows if "test" in r]
gap = lambda r: abs(r["test"]["biased"]["accuracy"] - r["test"]["confounding"]["accuracy"])
robust = [r for r in rows if gap(r) <= 0.03] or rows
print(max(robust, key=lambda r: r["test"]["unbiased"]["accuracy"])["name"] if robust else "")
PY
)
echo "best DenseNet121 ISNet row: $best"
for name in $best $KEEP; do
    for folder in study arena; do
        file="$WORK/$folder/$name.safetensors"
        [ -f "$file" ] && split -b 15M -d "$file" "$OUT/$name.part"
    done
done
ls -la "$OUT"
