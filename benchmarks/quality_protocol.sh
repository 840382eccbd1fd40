#!/usr/bin/env bash
# The whole quality protocol of benchmarks/README.md ("Quality protocol"), in
# two processes of one thread each (one per core of a 2-core machine):
#
#   1. tuning on the validation split: sweep_pid.py, the learning rates split
#      over the two processes (--shard), then once more without --shard,
#      which only reads their cached runs and writes results/sweep_pid.md and
#      the selection results/tuning.json;
#   2. the final configurations on the test split, the seeds split over the
#      two processes, then once more without --shard: results/fashion_mnist.md.
#
#   KERAS_BACKEND=tensorflow bash benchmarks/quality_protocol.sh [BUDGET FLAGS]
#
# BUDGET FLAGS (e.g. --epochs=48) go to every step; the defaults are the
# budget of "Quality protocol", item 7. SWEEP_FLAGS (e.g. the tuning grid,
# SWEEP_FLAGS="--levers_pid=default,ratio_0.3 --lrs=0.004,0.008") go to the
# tuning step only. Interrupted, it resumes: finished runs
# and evaluations are reused from runs/benchmarks/ (their cache), and an
# interrupted pretraining run resumes. Each process logs to
# runs/benchmarks/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# One thread per process: the two processes are the parallelism.
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-1}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
seeds="${SEEDS:-3}"
read -r -a sweep_flags <<<"${SWEEP_FLAGS:-}"
logs=runs/benchmarks/logs
mkdir -p "$logs"

# Runs `python benchmarks/$1 ...` as parts 0/2 and 1/2 side by side; fails if
# either part fails (its log names why).
both_parts() {
    local script=$1 name=$2
    shift 2
    local pids=() part
    for part in 0 1; do
        python "benchmarks/$script" "$@" --shard="$part/2" >"$logs/$name.part$part.log" 2>&1 &
        pids+=($!)
    done
    for part in 0 1; do
        wait "${pids[$part]}" || {
            echo "$script part $part/2 failed; see $logs/$name.part$part.log" >&2
            exit 1
        }
    done
}

echo "$(date -u +%H:%M) tuning on validation (2 processes)"
both_parts sweep_pid.py sweep "$@" ${sweep_flags[@]+"${sweep_flags[@]}"}
python benchmarks/sweep_pid.py "$@" ${sweep_flags[@]+"${sweep_flags[@]}"} >"$logs/sweep.log" 2>&1
echo "$(date -u +%H:%M) final configurations on the test split, $seeds seeds (2 processes)"
both_parts quality_fashion_mnist.py final "$@" --selected=results/tuning.json --final \
    --seeds="$seeds"
python benchmarks/quality_fashion_mnist.py "$@" --selected=results/tuning.json --final \
    --seeds="$seeds" | tee "$logs/final.log"
echo "$(date -u +%H:%M) done: results/sweep_pid.md, results/tuning.json, results/fashion_mnist.md"
