#!/usr/bin/env bash
# Runs the test suite once per Keras backend, each in its own process.
# Usage: bash tools/test_all_backends.sh [extra pytest args]
set -u
export TF_CPP_MIN_LOG_LEVEL=2
status=0
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=$backend"
  start=$(date +%s)
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider "$@" tests || status=1
  echo "=== KERAS_BACKEND=$backend finished in $(( $(date +%s) - start )) s"
done
exit $status
