#!/usr/bin/env bash
# The GPU check of the real study, for a machine with CUDA. CI never runs it. On an H200 (2026-12-04) part 1 took
# 141 s and part 3 170 s (its two runs one after the other, since run side by side); part 2 had run 204 of its 379
# jobs after 6 min (at 4 threads per job, since cut to 1). Not yet run whole in one go.
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
# 4. mixed precision: the tiny config on the GPU with every network's training and TTT in float32 and in bfloat16
#    (then TensorFloat-32), clean tables compared within the same tolerances (bench/precision.py).
# A part that fails does not stop the next (Snakemake runs with --keep-going); each part's output is also in
# OUT/stage<N>.log, and the script exits non-zero, naming the parts that failed. STAGES="1 3" runs some parts only;
# STAGE_TIMEOUT (seconds, default none) stops each long command of a part (the step costs, each Snakemake run)
# that runs longer. The README's GPU numbers come from this
# script's output.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$(mktemp -d -t robustcs-gpu-XXXXXX)}"
mkdir -p "$OUT"
if [ -n "$(ls -A "$OUT")" ]; then echo "$OUT: not empty; the check writes into a new folder" >&2; exit 2; fi
PY="${PYTHON:-python}"
SNAKEMAKE=("$PY" -m snakemake -s "$ROOT/Snakefile" --keep-going --quiet rules)
CORES="${CORES:-$(nproc)}"
# Several network jobs share the one GPU: one per 16 GB of its memory unless GPU_SLOTS says (the largest training
# step of real.yaml, the TTT U-Net's, peaks at 13 GB on an H200). mem_mb=100000 below with real.yaml's mem_mb: 16000
# also caps the network jobs at 6 at a time.
GPU_SLOTS="${GPU_SLOTS:-}"
STAGES="${STAGES:-1 2 3 4}"
LIMIT=()
if [ -n "${STAGE_TIMEOUT:-}" ]; then LIMIT=(timeout --foreground --signal=INT --kill-after=20 "$STAGE_TIMEOUT"); fi

"$PY" - <<'PY' || exit 1
import sys, torch
if not torch.cuda.is_available():
    sys.exit("bench/gpu_check.sh: torch sees no CUDA device (torch %s); run it on a GPU machine" % torch.__version__)
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
if [ -z "$GPU_SLOTS" ]; then
    GPU_SLOTS=$("$PY" -c 'import torch; print(max(1, torch.cuda.get_device_properties(0).total_memory // 16 // 2**30))')
fi
echo "cores $CORES, network jobs at once on the GPU: $GPU_SLOTS"

SECONDS=0
FAILED=()
# run_stage N TITLE FUNCTION: the part's output goes to the terminal and to OUT/stageN.log
run_stage() {
    local n="$1" title="$2" fn="$3" start=$SECONDS
    case " $STAGES " in *" $n "*) ;; *) return 0 ;; esac
    echo; echo "== $n. $title ($(date -u +%H:%M:%S))"
    if "$fn" 2>&1 | tee "$OUT/stage$n.log"; then
        echo "== $n. done in $((SECONDS - start)) s"
    else
        echo "== $n. FAILED after $((SECONDS - start)) s (log: $OUT/stage$n.log)"
        FAILED+=("$n")
    fi
}

step_costs() {
    "${LIMIT[@]}" "$PY" "$ROOT/bench/real_steps.py" --configfile "$ROOT/config/real.yaml" --out "$OUT/real_steps.csv" \
        | tee "$OUT/real_steps.txt"
}

rehearsal() {
    "$PY" -m robustcs.rehearsal "$OUT/data" > /dev/null || return 1
    # one CPU thread per job, so that every core runs a job: on 16 cores with 4 threads per job, the CPU-bound
    # rules (ingest, ESPIRiT at 640x368) held the rehearsal to 4 jobs at a time (204 of 379 jobs in 6 min).
    printf 'compute: {gpus: 1, threads: 1}\n' > "$OUT/gpu.yaml"
    "${LIMIT[@]}" "${SNAKEMAKE[@]}" --cores "$CORES" --resources gpu="$GPU_SLOTS" mem_mb=100000 \
        --configfile "$ROOT/config/real.yaml" "$ROOT/config/rehearsal.yaml" "$OUT/data/paths.yaml" "$OUT/gpu.yaml" \
        --directory "$OUT/rehearsal" -- all || return 1
    cat "$OUT/rehearsal/results/tables/runtime.md"
}

tiny_cpu_gpu() {
    # the two runs are independent: side by side, half the cores each (part 3 took 170 s one after the other)
    local half=$(( CORES > 1 ? CORES / 2 : 1 )) cpu_pid cpu_rc gpu_rc
    printf 'compute: {gpus: 1}\n' > "$OUT/tiny_gpu.yaml"  # merged key by key: the tiny config's threads stay
    CUDA_VISIBLE_DEVICES="" "${LIMIT[@]}" "${SNAKEMAKE[@]}" --cores "$half" --configfile "$ROOT/tests/config/tiny.yaml" \
        --directory "$OUT/tiny_cpu" -- all > "$OUT/tiny_cpu.log" 2>&1 &
    cpu_pid=$!
    "${LIMIT[@]}" "${SNAKEMAKE[@]}" --cores "$half" --resources gpu="$GPU_SLOTS" \
        --configfile "$ROOT/tests/config/tiny.yaml" "$OUT/tiny_gpu.yaml" --directory "$OUT/tiny_gpu" -- all
    gpu_rc=$?
    wait "$cpu_pid"; cpu_rc=$?
    echo "-- the CPU run (CUDA hidden), exit status $cpu_rc:"; cat "$OUT/tiny_cpu.log"
    if [ "$cpu_rc" -ne 0 ] || [ "$gpu_rc" -ne 0 ]; then
        echo "tiny config: the CPU run exited with $cpu_rc, the GPU run with $gpu_rc"; return 1
    fi
    "$PY" "$ROOT/bench/compare_tables.py" "$OUT/tiny_cpu/results/tables/clean.csv" \
        "$OUT/tiny_gpu/results/tables/clean.csv"
}

tiny_precision() {
    local rc=0
    for precision in bf16 tf32; do
        "${LIMIT[@]}" "$PY" "$ROOT/bench/precision.py" "$OUT/precision_$precision" --precision "$precision" \
            --cores "$CORES" --extra --resources gpu="$GPU_SLOTS" --config "compute={'gpus': 1}" || rc=1
    done
    return $rc
}

run_stage 1 "step costs at the real shapes (bench/real_steps.py, config/real.yaml)" step_costs
run_stage 2 "the rehearsal at the real shapes on the GPU (config/real.yaml + config/rehearsal.yaml)" rehearsal
run_stage 3 "the tiny config on the CPU and on the GPU, clean tables compared" tiny_cpu_gpu
run_stage 4 "mixed precision: the tiny config's networks in fp32 and in bf16 / tf32 on the GPU" tiny_precision

echo
echo "gpu_check total=${SECONDS} s; outputs in $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then echo "gpu_check: parts failed: ${FAILED[*]}" >&2; exit 1; fi
