#!/usr/bin/env bash
# Everything CI checks (.ci/run calls this after installing the project with
# `pip install -e ".[dev]"`), in order:
#   1. lint: `ruff check .` and `ruff format --check .`;
#   2. the docstring examples, once: `python -m pytest --doctest-modules
#      keras_pid_ssl` on TensorFlow (the examples print backend-independent
#      values; TensorFlow runs them fastest here: ~40 s against ~150 s on JAX);
#   3. the test suite once per Keras backend (TensorFlow, JAX, PyTorch), each
#      in its own pytest run, split over TEST_WORKERS processes (default 2,
#      pytest-xdist's `--dist loadfile`: a file's tests stay in one worker, in
#      order, so a module's fixtures are built once). The tests are mostly
#      single-threaded, so two workers use both cores of CI's machine;
#      TEST_WORKERS=0 runs the suite in one process;
#   4. the device check's smoke (`benchmarks/device_check.py --smoke`, JAX) in
#      a fresh virtualenv with `.[jax]` and no TensorFlow (skip with
#      KPS_SKIP_TF_FREE=1, e.g. offline).
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
    python -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile "$@" tests
done

tf_free_smoke() {
  local venv
  venv=$(mktemp -d)/venv
  python -m venv "$venv"
  "$venv/bin/pip" install -q -e ".[jax]"
  if "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
    echo "TensorFlow is importable in the TensorFlow-free virtualenv" >&2
    return 1
  fi
  KERAS_BACKEND=jax "$venv/bin/python" benchmarks/device_check.py --smoke --backends=jax \
    --out="$(dirname "$venv")/device_smoke.md"
}
if [[ "${KPS_SKIP_TF_FREE:-0}" != 1 ]]; then
  step "device check smoke without TensorFlow (KERAS_BACKEND=jax)" tf_free_smoke
fi

if ((${#failed[@]})); then
  echo "=== FAILED: ${failed[*]}"
  exit 1
fi
echo "=== all checks passed"
