#!/usr/bin/env bash
# Everything CI checks (.ci/run calls this after installing the project with
# `pip install -e ".[dev]"`), in order:
#   1. lint: `ruff check .` and `ruff format --check .`;
#   2. the docstring examples, once: `python -m pytest --doctest-modules
#      keras_pid_ssl` on TensorFlow (the examples print backend-independent
#      values; TensorFlow runs them fastest here: ~40 s against ~150 s on JAX);
#   3. the test suite once per Keras backend (TensorFlow, JAX, PyTorch), each
#      in its own process.
# Every step runs even if an earlier one failed, and each reports its time;
# the script exits non-zero if any step failed.
# Usage: bash tools/test_all_backends.sh [extra pytest args for step 3]
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
failed=()

step() {
  local name=$1
  shift
  echo "=== $name"
  local start
  start=$(date +%s)
  local rc=0
  "$@" || rc=$?
  if ((rc == 0)); then
    echo "=== $name passed in $(($(date +%s) - start)) s"
  else
    echo "=== $name FAILED (exit $rc) after $(($(date +%s) - start)) s"
    failed+=("$name")
  fi
}

step "ruff check" ruff check .
step "ruff format --check" ruff format --check .
step "doctests (KERAS_BACKEND=tensorflow)" env KERAS_BACKEND=tensorflow \
  python -m pytest -q -p no:cacheprovider --doctest-modules keras_pid_ssl
for backend in tensorflow jax torch; do
  step "tests (KERAS_BACKEND=$backend)" env KERAS_BACKEND="$backend" \
    python -m pytest -q -p no:cacheprovider "$@" tests
done

if ((${#failed[@]})); then
  echo "=== FAILED: ${failed[*]}"
  exit 1
fi
echo "=== all checks passed"
