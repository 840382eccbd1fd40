"""Hand-written mutants that mutmut does not generate, one at a time.

mutmut's operators swap arithmetic and comparison operators, change numbers
and strings, and drop call arguments; they never delete a call while keeping
its argument (`ops.stop_gradient(x)` -> `x`), swap `ops.minimum` and
`ops.maximum`, or remove a statement. Those are the mutants that break this
library's objective silently, so this script applies each of them to a scratch
copy of the repository (never to the working tree), runs the tests named for
it with `-x`, and reports killed or survived.

    python tools/named_mutants.py [--only-regex REGEX] [--out results.json]

Run from the repository root with KERAS_BACKEND set (tools/mutation.sh does).
A mutant whose `old` text no longer occurs exactly once in its file is
reported as "stale", a test path that does not exist as "error"; either
makes the script exit 1.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import tomllib
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception"]


def _deselected():
    """The `--deselect` arguments of [tool.mutmut] (tests known to fail unmutated)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        selection = tomllib.load(f)["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    return [
        arg
        for flag, value in zip(selection, selection[1:], strict=False)
        if flag == "--deselect"
        for arg in (flag, value)
    ]


INFO = "keras_pid_ssl/information/"
LOSSES = "keras_pid_ssl/losses/"
MODELS = "keras_pid_ssl/models/"

# (name, file, old text, new text, tests). `old` may span lines; a tuple of
# texts for `old` and `new` makes one mutant of several replacements.
MUTANTS = [
    # The three mutants issue 16 names.
    (
        "pid_model: target without stop_gradient",
        MODELS + "pid_model.py",
        "return ops.stop_gradient(embedding)",
        "return embedding",
        ["tests/models/test_pid_model.py"],
    ),
    (
        "gaussian_pid: MMI redundancy max, synergy over min",
        INFO + "gaussian_pid.py",
        ("redundancy = ops.minimum(i1, i2)", '"synergy": i12 - ops.maximum(i1, i2)'),
        ("redundancy = ops.maximum(i1, i2)", '"synergy": i12 - ops.minimum(i1, i2)'),
        ["tests/information/test_gaussian_pid.py", "tests/losses/test_pid_loss.py"],
    ),
    (
        "gaussian_pid: MMI redundancy max only",
        INFO + "gaussian_pid.py",
        "redundancy = ops.minimum(i1, i2)",
        "redundancy = ops.maximum(i1, i2)",
        ["tests/information/test_gaussian_pid.py", "tests/losses/test_pid_loss.py"],
    ),
    (
        "barlow_twins: default lambda 5e-3 -> 0.0051 (the official code's)",
        LOSSES + "barlow_twins.py",
        "lambda_offdiag=5e-3,",
        "lambda_offdiag=0.0051,",
        ["tests/losses"],
    ),
    (
        "barlow_twins: lambda ignored (fixed 5e-3)",
        LOSSES + "barlow_twins.py",
        "self.scale * self.lambda_offdiag * off_diag",
        "self.scale * 5e-3 * off_diag",
        ["tests/losses"],
    ),
    # PIDModel's target pass.
    (
        "pid_model: BatchNorm statistics not restored after the target pass",
        MODELS + "pid_model.py",
        "            variable.assign(value)\n",
        "            pass\n",
        ["tests/models/test_pid_model.py"],
    ),
    (
        "pid_model: target pass in inference mode",
        MODELS + "pid_model.py",
        'embedding = self._embed(batch["target"], training)',
        'embedding = self._embed(batch["target"], False)',
        ["tests/models/test_pid_model.py", "tests/models/test_model_mutants.py"],
    ),
    (
        "pid_model: EMA update without (1 - m)",
        MODELS + "pid_model.py",
        "m * target + (1.0 - m) * ops.stop_gradient(online.value)",
        "m * target + ops.stop_gradient(online.value)",
        ["tests/models/test_pid_model.py"],
    ),
    (
        "pid_model: EMA target never updated",
        MODELS + "pid_model.py",
        "            self._update_target_network()\n",
        "            pass\n",
        ["tests/models/test_pid_model.py"],
    ),
    # PIDLoss.
    (
        "pid: r2 units, redundancy over max and synergy over min",
        LOSSES + "pid.py",
        'single_min = ops.minimum(per_dim["r1_sq"], per_dim["r2_sq"])\n'
        '                single_max = ops.maximum(per_dim["r1_sq"], per_dim["r2_sq"])',
        'single_min = ops.maximum(per_dim["r1_sq"], per_dim["r2_sq"])\n'
        '                single_max = ops.minimum(per_dim["r1_sq"], per_dim["r2_sq"])',
        ["tests/losses"],
    ),
    (
        "pid: full estimator, r2 redundancy over max",
        LOSSES + "pid.py",
        'redundancy = ops.minimum(r2["i1"], r2["i2"])',
        'redundancy = ops.maximum(r2["i1"], r2["i2"])',
        ["tests/losses"],
    ),
    (
        "pid: full estimator, r2 synergy over min",
        LOSSES + "pid.py",
        'synergy = r2["i12"] - ops.maximum(r2["i1"], r2["i2"])',
        'synergy = r2["i12"] - ops.minimum(r2["i1"], r2["i2"])',
        ["tests/losses"],
    ),
    (
        "pid: atoms summed instead of averaged over dimensions",
        LOSSES + "pid.py",
        "atoms = {name: ops.mean(per_dim[name]) for name in ATOM_NAMES}",
        "atoms = {name: ops.sum(per_dim[name]) for name in ATOM_NAMES}",
        ["tests/losses"],
    ),
    (
        "pid: invariance term not re-weighted",
        LOSSES + "pid.py",
        'out[inv] = coef["invariance_weight"] * out[inv]',
        "out[inv] = out[inv]",
        ["tests/losses"],
    ),
    (
        "pid: gradient ratio without the square root",
        LOSSES + "pid.py",
        "return ops.sqrt(pid_sq) / (ops.sqrt(base_sq) + 1e-12)",
        "return pid_sq / (base_sq + 1e-12)",
        ["tests/losses", "tests/models/test_pid_model.py"],
    ),
    # PseudoLabelPIDLoss.
    (
        "pseudo_label_pid: heads trained on live embeddings",
        LOSSES + "pseudo_label_pid.py",
        "logits = self.heads(ops.stop_gradient(z1), ops.stop_gradient(z2))",
        "logits = self.heads(z1, z2)",
        ["tests/losses", "tests/models/test_pseudo_label_model.py"],
    ),
    (
        "pseudo_label_pid: PID terms through trainable heads",
        LOSSES + "pseudo_label_pid.py",
        "*self.heads(z1, z2, frozen=True)",
        "*self.heads(z1, z2)",
        ["tests/losses", "tests/models/test_pseudo_label_model.py"],
    ),
    (
        "pseudo_label_pid: atoms reported before the first clustering",
        LOSSES + "pseudo_label_pid.py",
        "diagnostics = {name: ready * atoms[name] for name in",
        "diagnostics = {name: atoms[name] for name in",
        ["tests/losses", "tests/models/test_pseudo_label_model.py"],
    ),
    # Information estimators.
    (
        "gaussian_pid: small-batch warning points past the caller",
        INFO + "gaussian_pid.py",
        "        stacklevel=3,\n",
        "        stacklevel=4,\n",
        [
            "tests/information/test_information_mutants.py",
            "tests/information/test_information_mutants2.py",
        ],
    ),
    (
        "gaussian_pid: correlations not clipped",
        INFO + "gaussian_pid.py",
        "r1 = ops.clip(ops.mean(u1 * ut, axis=0), -bound, bound)",
        "r1 = ops.mean(u1 * ut, axis=0)",
        ["tests/information/test_gaussian_pid.py"],
    ),
    (
        "gaussian_pid: full estimator reads each source once",
        INFO + "gaussian_pid.py",
        "i1 = _mutual_information([ut], [u1, u1], ridge)",
        "i1 = _mutual_information([ut], [u1], ridge)",
        ["tests/information/test_gaussian_pid.py"],
    ),
    (
        "gaussian_pid: full estimator without the I12 >= max(I1, I2) clamp",
        INFO + "gaussian_pid.py",
        "i12 = ops.maximum(i12, ops.maximum(i1, i2))",
        "i12 = i12",
        ["tests/information/test_gaussian_pid.py"],
    ),
    (
        "classifier_pid: frozen heads pass gradients to their kernels",
        INFO + "classifier_pid.py",
        "y = ops.matmul(x, ops.stop_gradient(layer.kernel)) + ops.stop_gradient(layer.bias)",
        "y = ops.matmul(x, layer.kernel) + layer.bias",
        ["tests/information/test_classifier_pid.py", "tests/losses"],
    ),
    (
        "classifier_pid: I12 not clamped at max(I1, I2)",
        INFO + "classifier_pid.py",
        "i12 = ops.maximum(entropy - ce12, ops.maximum(i1, i2))",
        "i12 = entropy - ce12",
        ["tests/information/test_classifier_pid.py"],
    ),
    # SSLModel, LARS.
    (
        "ssl_model: regularisation losses dropped",
        MODELS + "ssl_model.py",
        'loss = self.nan_guard(terms["loss"] + self._regularization_loss(), z1, z2)',
        'loss = self.nan_guard(terms["loss"], z1, z2)',
        ["tests/models/test_ssl_model.py", "tests/models/test_model_mutants.py"],
    ),
    (
        "ssl_model: fit skips the first-batch check",
        MODELS + "ssl_model.py",
        "        self._check_first_batch(x)\n",
        "",
        ["tests/models/test_ssl_model.py"],
    ),
    (
        "lars: no trust ratio",
        "keras_pid_ssl/optimizers/lars.py",
        "            update = update * trust_ratio\n",
        "",
        ["tests/optimizers/test_lars.py"],
    ),
    (
        "lars: no coupled weight decay",
        "keras_pid_ssl/optimizers/lars.py",
        "            update = update + ops.cast(self.weight_decay, dtype) * variable\n",
        "            pass\n",
        ["tests/optimizers/test_lars.py"],
    ),
    (
        "lars: momentum buffer not used (plain SGD step)",
        "keras_pid_ssl/optimizers/lars.py",
        "self.assign_sub(variable, learning_rate * momentum)",
        "self.assign_sub(variable, learning_rate * update)",
        ["tests/optimizers/test_lars.py"],
    ),
    # mutmut mutants whose killing test lies outside [tool.mutmut]'s test
    # selection (test_lars_mutants2.py; the selection names test_lars.py, and
    # changing it resets every cached verdict), or in a function that other
    # work changed after the cached run: the kill is confirmed here.
    (
        "lars: casts to floatx, not the variable dtype (mutmut update_step__mutmut_1)",
        "keras_pid_ssl/optimizers/lars.py",
        "dtype = variable.dtype",
        "dtype = None",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: gradient cast to floatx (mutmut update_step__mutmut_9)",
        "keras_pid_ssl/optimizers/lars.py",
        "update = ops.cast(gradient, dtype)",
        "update = ops.cast(gradient, None)",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: weight decay cast to floatx (mutmut update_step__mutmut_25)",
        "keras_pid_ssl/optimizers/lars.py",
        "ops.cast(self.weight_decay, dtype)",
        "ops.cast(self.weight_decay, None)",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: eta cast to floatx (mutmut update_step__mutmut_43)",
        "keras_pid_ssl/optimizers/lars.py",
        "ops.cast(self.eta, dtype)",
        "ops.cast(self.eta, None)",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: bias learning-rate scale cast to floatx (mutmut update_step__mutmut_75)",
        "keras_pid_ssl/optimizers/lars.py",
        "ops.cast(self.bias_and_norm_learning_rate_scale, dtype)",
        "ops.cast(self.bias_and_norm_learning_rate_scale, None)",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: momentum cast to floatx (mutmut update_step__mutmut_87)",
        "keras_pid_ssl/optimizers/lars.py",
        "ops.cast(self.momentum, dtype)",
        "ops.cast(self.momentum, None)",
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "lars: momentum slots renamed (mutmut build__mutmut_7)",
        "keras_pid_ssl/optimizers/lars.py",
        'self.add_optimizer_variables(variables, "momentum")',
        'self.add_optimizer_variables(variables, "XXmomentumXX")',
        ["tests/optimizers/test_lars_mutants2.py"],
    ),
    (
        "pid_model: target encoder pass in inference mode (mutmut target__mutmut_9)",
        MODELS + "pid_model.py",
        'features = self.target_encoder(batch["target"], training=training)',
        'features = self.target_encoder(batch["target"], training=None)',
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "pid_model: target projector pass in inference mode (mutmut target__mutmut_16)",
        MODELS + "pid_model.py",
        "self.target_projector(features, training=training)",
        "self.target_projector(features, training=None)",
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "pid_model: cloned target layers unnamed (mutmut _clone_layer__mutmut_2)",
        MODELS + "pid_model.py",
        'config["name"] = name',
        'config["name"] = None',
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "pid_model: gradient-ratio tracking dropped from the config (mutmut get_config__mutmut_3)",
        MODELS + "pid_model.py",
        "track_gradient_ratio=self.track_gradient_ratio,",
        "track_gradient_ratio=None,",
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "pid_model: penalties subtracted (mutmut compute_loss__mutmut_42 at 88fe24e)",
        MODELS + "pid_model.py",
        'self.nan_guard(terms["loss"] + self._regularization_loss(), *embeddings)',
        'self.nan_guard(terms["loss"] - self._regularization_loss(), *embeddings)',
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "pid_model: compute_loss defaults to inference mode (mutmut compute_loss__mutmut_1)",
        MODELS + "pid_model.py",
        "sample_weight=None, training=True):",
        "sample_weight=None, training=False):",
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "ssl_model: compute_loss defaults to inference mode (mutmut compute_loss__mutmut_1)",
        MODELS + "ssl_model.py",
        "sample_weight=None, training=True):",
        "sample_weight=None, training=False):",
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "ssl_model: channel refusal names NoneType (mutmut _check_channels__mutmut_14)",
        MODELS + "ssl_model.py",
        "f\"`{type(self).__name__}`'s encoder",
        "f\"`{type(None).__name__}`'s encoder",
        ["tests/models/test_model_mutants2.py"],
    ),
    (
        "ssl_model: channel refusal loses its advice (mutmut _check_channels__mutmut_17)",
        MODELS + "ssl_model.py",
        '"kps.data.convert_channels, or build the encoder for this input."',
        '"XXkps.data.convert_channels, or build the encoder for this input.XX"',
        ["tests/models/test_model_mutants2.py"],
    ),
]


def make_scratch():
    """A copy of the package, the tests and the pytest configuration."""
    scratch = tempfile.mkdtemp(prefix="kps-named-mutants-")
    for name in ("keras_pid_ssl", "tests"):
        shutil.copytree(
            os.path.join(ROOT, name),
            os.path.join(scratch, name),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy2(os.path.join(ROOT, name), scratch)
    return scratch


def preload():
    """Imports the heavy dependencies once; each mutant's test run forks from here.

    keras_pid_ssl itself is not imported: every fork imports the scratch copy
    afresh, with that mutant applied. No .pyc is written, so a mutated and a
    restored file of the same size and mtime cannot share a stale cache entry.
    """
    sys.dont_write_bytecode = True
    import keras  # noqa: F401  (and the backend)
    import pytest  # noqa: F401

    with contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401  (tf.data in the test helpers)


def run(scratch, tests, timeout=1800):
    """pytest on `tests` in a forked child, inside `scratch`: (exit code, output, seconds).

    The exit code is 98 when the child imported keras_pid_ssl from anywhere
    but the scratch copy, -1 on timeout.
    """
    start = time.time()
    with tempfile.TemporaryFile(mode="w+") as log:
        pid = os.fork()
        if pid == 0:  # the child
            code = 3
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                os.chdir(scratch)
                sys.path.insert(0, scratch)
                signal.alarm(timeout)
                import pytest

                code = int(pytest.main(PYTEST_ARGS + _deselected() + tests))
                module = sys.modules.get("keras_pid_ssl")
                if module is not None and not module.__file__.startswith(scratch):
                    print(f"imported {module.__file__}, not the scratch copy")
                    code = 98
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return (-1 if code == -signal.SIGALRM else code), output, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only-regex", default="", help="run the mutants whose name matches (re.search)"
    )
    parser.add_argument("--out", default=os.path.join(ROOT, "mutants", "named-mutants.json"))
    args = parser.parse_args()
    selected = [m for m in MUTANTS if re.search(args.only_regex, m[0])]
    if not selected:
        print(f"named mutants: none match {args.only_regex!r}")
        return
    scratch = make_scratch()
    results = []
    try:
        preload()
        if "keras_pid_ssl" in sys.modules:
            sys.exit("keras_pid_ssl was imported before the fork: mutants would not apply")
        # Unmutated, every selected test must pass, or every mutant looks killed.
        clean_tests = sorted({test for *_, tests in selected for test in tests})
        code, output, seconds = run(scratch, clean_tests)
        print(f"clean run {seconds:6.1f}s  exit {code}: {' '.join(clean_tests)}", flush=True)
        if code != 0:
            print(output[-3000:])
            sys.exit("The unmutated tests fail: fix them or deselect them in [tool.mutmut]")
        for name, path, old, new, tests in selected:
            target = os.path.join(scratch, path)
            with open(target) as f:
                source = f.read()
            olds, news = (
                (old,) if isinstance(old, str) else old,
                (new,) if isinstance(new, str) else new,
            )
            counts = [source.count(text) for text in olds]
            if counts != [1] * len(olds):
                status, seconds, detail = "stale", 0.0, f"old texts found {counts} times"
            else:
                mutated = source
                for a, b in zip(olds, news, strict=True):
                    mutated = mutated.replace(a, b)
                with open(target, "w") as f:
                    f.write(mutated)
                try:
                    code, output, seconds = run(scratch, tests)
                finally:
                    with open(target, "w") as f:
                        f.write(source)
                # pytest: 1 tests failed, 2 collection error (both kill the
                # mutant); 4 and 5 (bad arguments, no tests) are errors here.
                status = {0: "survived", 1: "killed", 2: "killed", -1: "timeout"}.get(code, "error")
                failed = [line for line in output.splitlines() if line.startswith("FAILED")]
                detail = failed[0] if failed else output.strip().splitlines()[-1:]
            results.append(
                {
                    "name": name,
                    "file": path,
                    "status": status,
                    "seconds": round(seconds, 1),
                    "detail": detail,
                }
            )
            print(f"{status:9s} {seconds:6.1f}s  {name}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    killed = sum(r["status"] == "killed" for r in results)
    print(f"named mutants: {killed} / {len(results)} killed")
    if any(r["status"] in ("stale", "error") for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
