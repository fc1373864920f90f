#!/usr/bin/env bash
# The GPU check of the real study, for a machine with CUDA (about 10 minutes on one large GPU). CI never runs it.
#
#   bash bench/gpu_check.sh [OUT]        OUT: a new folder for everything it writes (default: a temporary one)
#
# 1. step costs at the real shapes: bench/real_steps.py on every variant of config/real.yaml (paper-size
#    networks included) on the GPU, with the hours each stage of the real study then takes on one GPU;
# 2. the rehearsal at the real shapes on the GPU: config/real.yaml + config/rehearsal.yaml (paper-size networks,
#    budgets cut) on generated files (python -m robustcs.rehearsal), compute.gpus: 1, every rule of the study;
#    prints its time per stage (results/tables/runtime.md);
# 3. CPU and GPU agree: the tiny test config run once with CUDA hidden and once on the GPU, clean tables
#    compared by bench/compare_tables.py (classical solvers within 1e-3 SSIM, seeded/trained within 0.05).
# Exits non-zero if any part fails. The README's GPU numbers come from this script's output.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$(mktemp -d -t robustcs-gpu-XXXXXX)}"
mkdir -p "$OUT"
if [ -n "$(ls -A "$OUT")" ]; then echo "$OUT: not empty; the check writes into a new folder" >&2; exit 2; fi
PY="${PYTHON:-python}"
SNAKEMAKE=(snakemake -s "$ROOT/Snakefile")
CORES="${CORES:-$(nproc)}"
# Several network jobs share the one GPU at a time (the rehearsal's are small); 4 is safe on a 40 GB card.
GPU_SLOTS="${GPU_SLOTS:-4}"

"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("bench/gpu_check.sh: torch sees no CUDA device (torch %s); run it on a GPU machine" % torch.__version__)
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY

stage() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }
SECONDS=0

stage "1. step costs at the real shapes (bench/real_steps.py, config/real.yaml)"
"$PY" "$ROOT/bench/real_steps.py" --configfile "$ROOT/config/real.yaml" --out "$OUT/real_steps.csv" \
    | tee "$OUT/real_steps.txt"
echo "step costs: ${SECONDS} s"

stage "2. the rehearsal at the real shapes on the GPU"
"$PY" -m robustcs.rehearsal "$OUT/data" > /dev/null
printf 'compute: {gpus: 1, threads: 4}\n' > "$OUT/gpu.yaml"
start=$SECONDS
"${SNAKEMAKE[@]}" --cores "$CORES" --resources gpu="$GPU_SLOTS" mem_mb=100000 \
    --configfile "$ROOT/config/real.yaml" "$ROOT/config/rehearsal.yaml" "$OUT/data/paths.yaml" "$OUT/gpu.yaml" \
    --directory "$OUT/rehearsal" --quiet rules -- all
cat "$OUT/rehearsal/results/tables/runtime.md"
echo "rehearsal: $((SECONDS - start)) s"

stage "3. the tiny config on the CPU and on the GPU, clean tables compared"
start=$SECONDS
CUDA_VISIBLE_DEVICES="" "${SNAKEMAKE[@]}" --cores "$CORES" --configfile "$ROOT/tests/config/tiny.yaml" \
    --directory "$OUT/tiny_cpu" --quiet rules -- all
printf 'compute: {gpus: 1}\n' > "$OUT/tiny_gpu.yaml"  # merged key by key: the tiny config's threads stay
"${SNAKEMAKE[@]}" --cores "$CORES" --resources gpu="$GPU_SLOTS" --configfile "$ROOT/tests/config/tiny.yaml" "$OUT/tiny_gpu.yaml" \
    --directory "$OUT/tiny_gpu" --quiet rules -- all
"$PY" "$ROOT/bench/compare_tables.py" "$OUT/tiny_cpu/results/tables/clean.csv" "$OUT/tiny_gpu/results/tables/clean.csv"
echo "tiny CPU vs GPU: $((SECONDS - start)) s"

echo
echo "gpu_check total=${SECONDS} s; outputs in $OUT"
