#!/usr/bin/env bash
# Mutation testing of the core (issue 16; not in CI). Results: docs/testing.md.
#
#   bash tools/mutation.sh [MODULE ...]
#
# MODULE: replicas, lars, losses, models, information (default: all five, in
# that order). Runs on one backend, KERAS_BACKEND (default torch: the targeted
# tests take ~40 s there against ~5 min on JAX, whose fit tests compile).
#
# MUTATION_MODE selects which mutants mutmut runs (the cache is ./mutants):
#   all        (default) every mutant of the modules, cached verdicts ignored;
#   resume     only the mutants without a verdict (a stopped run, or functions
#              whose code changed: mutmut 3.8 resets those by a hash per
#              function); cached verdicts stand even when the tests changed;
#   survivors  the modules' mutants without a verdict plus those that survived
#              (after adding tests: confirms the kills, keeps the other verdicts).
#
# 1. mutmut 3 ([tool.mutmut] in pyproject.toml) mutates the modules' functions
#    in a copy under ./mutants and runs, per mutant, the tests that executed
#    the mutated function. Naming the modules makes mutmut re-test every
#    mutant of them, not only those without a cached result.
# 2. tools/named_mutants.py applies the mutants mutmut has no operator for
#    (deleting ops.stop_gradient, swapping ops.minimum and ops.maximum,
#    removing a statement, changing a default), one at a time, in a scratch
#    copy, among them the three issue 16 names.
# 3. A summary per module: killed / total and every surviving mutant, the
#    input of docs/testing.md (`mutmut show NAME` prints a mutant's diff).
#
# Environment: MUTATION_JOBS (parallel workers, default 2; 1 on a shared
# machine), MUTATION_NICE (niceness, default 0), MUTATION_FRESH=1 (delete
# ./mutants first: regenerate every mutant and re-collect the stats).
# Changing [tool.mutmut]'s test selection or pytest arguments makes mutmut
# reset every verdict (its config fingerprint); other edits keep them.
set -euo pipefail
cd "$(dirname "$0")/.."

export KERAS_BACKEND="${KERAS_BACKEND:-torch}"
export TF_CPP_MIN_LOG_LEVEL=2
# One thread per worker: the workers are the parallelism.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
jobs="${MUTATION_JOBS:-2}"
mode="${MUTATION_MODE:-all}"
niceness="${MUTATION_NICE:-0}"

declare -A globs=(
    [replicas]="keras_pid_ssl.distribute.replicas.*"
    [lars]="keras_pid_ssl.optimizers.lars.*"
    [losses]="keras_pid_ssl.losses.*"
    [models]="keras_pid_ssl.models.pid_model.* keras_pid_ssl.models.ssl_model.*"
    [information]="keras_pid_ssl.information.*"
)
# The named mutants of each module (their names start with the file's name).
declare -A named=(
    [replicas]="^replicas:" [lars]="^lars:" [losses]="^(barlow_twins|pid|pseudo_label_pid):"
    [models]="^(pid_model|ssl_model):" [information]="^(gaussian_pid|classifier_pid):"
)
modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=(replicas lars losses models information)
selected=()
for module in "${modules[@]}"; do
    [[ -n "${globs[$module]:-}" ]] || { echo "unknown module: $module (${!globs[*]})" >&2; exit 2; }
    # shellcheck disable=SC2206  # the globs are mutant-name patterns for mutmut
    selected+=(${globs[$module]})
done

if [[ "${MUTATION_FRESH:-0}" == 1 ]]; then rm -rf mutants; fi
echo "backend=$KERAS_BACKEND jobs=$jobs nice=$niceness mode=$mode" \
    "cpus=$(getconf _NPROCESSORS_ONLN) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python $(python -c 'import platform; print(platform.python_version())'), $(mutmut --version)"
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- keras_pid_ssl || echo ' + uncommitted changes in keras_pid_ssl/')"

# The mutant names to pass to mutmut: patterns (all), none (resume: mutmut
# then runs only the mutants without a verdict), or the exact names of the
# selected modules' unverified and surviving mutants (survivors).
case "$mode" in
    all) names=("${selected[@]}") ;;
    resume) names=() ;;
    survivors)
        mapfile -t names < <(mutmut results --all true 2>/dev/null | python -c '
import sys
patterns = [p.rstrip("*") for p in sys.argv[1:]]
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if status in ("survived", "not checked") and any(name.startswith(p) for p in patterns):
        print(name)
' "${selected[@]}")
        [[ ${#names[@]} -gt 0 ]] || { echo "no surviving or unverified mutant to run"; mode=none; }
        ;;
    *) echo "unknown MUTATION_MODE: $mode (all, resume, survivors)" >&2; exit 2 ;;
esac

start=$(date +%s)
# mutmut copies also_copy files without creating their folders.
mkdir -p mutants/tools
# The full log (progress lines, then one line per mutant) stays in mutants/.
if [[ "$mode" != none ]]; then
    nice -n "$niceness" mutmut run --max-children "$jobs" "${names[@]}" 2>&1 \
        | stdbuf -o0 tr '\r' '\n' >mutants/run.log || true
    grep -a "mutations/second" mutants/run.log || { tail -n 30 mutants/run.log; exit 1; }
fi
mutmut_seconds=$(( $(date +%s) - start ))

start=$(date +%s)
named_status=0
for module in "${modules[@]}"; do
    nice -n "$niceness" python tools/named_mutants.py --only-regex "${named[$module]}" \
        --out "mutants/named-$module.json" || named_status=1
done
named_seconds=$(( $(date +%s) - start ))

mutmut results --all true 2>/dev/null | python -c '
import collections, sys
patterns = sys.argv[1:]
count = collections.defaultdict(collections.Counter)
survivors = collections.defaultdict(list)
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if not name or not any(name.startswith(p.rstrip("*")) for p in patterns):
        continue
    module = name.split(".x")[0]
    count[module][status] += 1
    if status != "killed":
        survivors[module].append(f"{status}: {name}")
print("%-45s killed / total" % "module")
for module in sorted(count):
    c = count[module]
    print("%-45s %4d / %4d" % (module, c["killed"], sum(c.values())))
for module in sorted(survivors):
    for line in survivors[module]:
        print("   ", line)
' "${selected[@]}"
echo "mutmut: ${mutmut_seconds}s, named mutants: ${named_seconds}s," \
    "load now: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$named_status"
