#!/usr/bin/env bash
# Whole-model latency, same thread count for everyone (THREADS, default 1):
#   lopper dense vs lopper pruned (interleaved by `lopper bench --vs`), and onnxruntime and
#   tract (the bench-only crate `benches/`) on the dense ONNX original, run in alternating
#   rounds with lopper.
# Models: the PP-OCR text-direction classifier (dense, 90% unstructured, 90% 4x1 blocks)
# and the ResNet-style ONNX `light` models (dense, 90% 4x1 blocks). Pruned variants leave
# the first layer and the classifier dense, as `lopper prune` does by default; `-all`
# variants prune those too (`--no-protect`), so that 90% of all weights are zero.
#
# Needs the Python venv of scripts/test-all.sh (onnxruntime, onnx, rapidocr-onnxruntime);
# LOPPER_PYTHON, LOPPER_PPOCR_CLS and LOPPER_ONNX_LIGHT override where things are.
# Usage: scripts/bench-models.sh            (THREADS=2 ITERS=100 ROUNDS=3 to change)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${THREADS:-1}
iters=${ITERS:-100}
rounds=${ROUNDS:-3}
python=${LOPPER_PYTHON:-target/test-venv/bin/python}
site=$("$python" -c 'import site; print(site.getsitepackages()[0])')
cls=${LOPPER_PPOCR_CLS:-$site/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx}
light=${LOPPER_ONNX_LIGHT:-$site/onnx/backend/test/data/light}
out=target/bench-models
mkdir -p "$out"

cargo build --release -q -p lopper-converter --bin lopper
cargo build --release -q -p lopper-benches --bin tract-bench
lopper="${CARGO_TARGET_DIR:-target}/release/lopper"
tract="${CARGO_TARGET_DIR:-target}/release/tract-bench"

# onnxruntime latency of one model: p50 in ms over `iters` runs after a warm-up. An
# optional second argument `D0,D1,...` is the shape of the first input.
ort_p50() {
    "$python" - "$1" "$threads" "$iters" "${2:-}" <<'EOF'
import statistics, sys, time
import numpy as np, onnxruntime as ort
path, threads, iters, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {
    i.name: rng.random([d if isinstance(d, int) and d > 0 else 1 for d in i.shape], dtype=np.float32)
    for i in session.get_inputs()
}
if shape:
    first = session.get_inputs()[0].name
    feeds[first] = rng.random([int(d) for d in shape.split(",")], dtype=np.float32)
for _ in range(max(iters // 10, 5)):
    session.run(None, feeds)
times = []
for _ in range(iters):
    start = time.perf_counter()
    session.run(None, feeds)
    times.append((time.perf_counter() - start) * 1e3)
print(f"{statistics.median(times):.4f}")
EOF
}

# tract latency of one model (single thread): p50 in ms; optional input shape as for ort_p50.
tract_p50() {
    "$tract" "$1" --iters "$iters" ${2:+--shape "$2"}
}

# `lopper bench MODEL --vs OTHER --json` -> "p50 vs_p50"
lopper_p50() {
    "$lopper" bench "$1" --vs "$2" --threads "$threads" --iters "$iters" --warmup 10 --json |
        "$python" -c 'import json,sys; j=json.load(sys.stdin); print(j["p50_ms"], j["vs_p50_ms"])'
}

median() { tr ' ' '\n' | sort -g | awk 'NF {a[++n] = $1} END {print a[int((n + 1) / 2)]}'; }

# One table row per variant of `onnx` (input shape `shape`, or empty when fixed): lopper
# dense and the variant (interleaved), onnxruntime and tract on the dense ONNX; p50 ms,
# median over the rounds, and the variant's speed-up over each.
compare() {
    local name=$1 onnx=$2 shape=$3 dense=$4
    shift 4
    for variant in "$dense" "$@"; do
        local l_dense="" l_model="" o="" t=""
        for _ in $(seq "$rounds"); do
            read -r model_ms dense_ms < <(lopper_p50 "$variant" "$dense")
            l_model+="$model_ms "
            l_dense+="$dense_ms "
            o+="$(ort_p50 "$onnx" "$shape") "
            t+="$(tract_p50 "$onnx" "$shape") "
        done
        local m d r tr
        m=$(echo "$l_model" | median)
        d=$(echo "$l_dense" | median)
        r=$(echo "$o" | median)
        tr=$(echo "$t" | median)
        printf '| %s | %s | %.3f | %.3f | %.3f | %.3f | %.2fx | %.2fx | %.2fx |\n' "$name" \
            "$(basename "$variant" .lopper)" "$m" "$d" "$r" "$tr" "$(echo "$d / $m" | bc -l)" \
            "$(echo "$r / $m" | bc -l)" "$(echo "$tr / $m" | bc -l)"
    done
}

echo "## Whole models: $(lscpu | sed -n 's/^Model name: *//p'), $threads thread(s), $iters runs x $rounds rounds"
echo
echo "| model | lopper variant | variant ms | lopper dense ms | onnxruntime ms | tract ms | speed-up vs lopper dense | vs onnxruntime | vs tract |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"

shape=1,3,48,192
in=(--input-shape "x=$shape")
"$lopper" convert "$cls" "${in[@]}" -o "$out/ppocr-cls.lopper" >/dev/null
"$lopper" prune "$cls" "${in[@]}" --method magnitude --sparsity 0.9 -o "$out/ppocr-cls-90.lopper" >/dev/null
"$lopper" prune "$cls" "${in[@]}" --method block:4x1 --sparsity 0.9 -o "$out/ppocr-cls-4x1-90.lopper" >/dev/null
"$lopper" prune "$cls" "${in[@]}" --method block:4x1 --sparsity 0.9 --no-protect -o "$out/ppocr-cls-4x1-90-all.lopper" >/dev/null
compare "PP-OCR cls" "$cls" "$shape" "$out/ppocr-cls.lopper" "$out/ppocr-cls-90.lopper" "$out/ppocr-cls-4x1-90.lopper" "$out/ppocr-cls-4x1-90-all.lopper"

for model in resnet50 squeezenet shufflenet; do
    onnx="$light/light_$model.onnx"
    [ -f "$onnx" ] || continue
    "$lopper" convert "$onnx" -o "$out/$model.lopper" >/dev/null
    "$lopper" prune "$onnx" --method block:4x1 --sparsity 0.9 -o "$out/$model-4x1-90.lopper" >/dev/null
    "$lopper" prune "$onnx" --method block:4x1 --sparsity 0.9 --no-protect -o "$out/$model-4x1-90-all.lopper" >/dev/null
    compare "$model" "$onnx" "" "$out/$model.lopper" "$out/$model-4x1-90.lopper" "$out/$model-4x1-90-all.lopper"
done
