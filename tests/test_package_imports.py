"""`import keras_pid_ssl` is lazy: no heavy module beyond Keras's own until it is needed."""

import json
import os
import subprocess
import sys

import pytest

import keras_pid_ssl as kps
from conftest import once_per_ci

HEAVY = ("tensorflow", "tensorflow_datasets", "matplotlib", "sklearn", "scipy")

# Which heavy modules `import keras` loads, and which `import keras_pid_ssl`
# adds (Keras itself imports matplotlib and scikit-learn when they are
# installed, for `keras.visualization` and `keras.wrappers`).
PROGRAM = """
import json, sys
import keras
after_keras = {m for m in HEAVY if m in sys.modules}
import keras_pid_ssl as kps
after_package = {m for m in HEAVY if m in sys.modules}
model = kps.PIDModel  # eager: a serialisable class
lazy_loaded = {m for m in ("keras_pid_ssl.training", "keras_pid_ssl.plots",
               "keras_pid_ssl.evaluation", "keras_pid_ssl.export") if m in sys.modules}
print(json.dumps(dict(after_keras=sorted(after_keras), after_package=sorted(after_package),
                      lazy_loaded=sorted(lazy_loaded))))
"""


def _run(backend, program):
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + program],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@once_per_ci("jax")
def test_import_on_jax_loads_no_tensorflow_and_nothing_heavy_beyond_keras():
    modules = _run("jax", PROGRAM)
    assert "tensorflow" not in modules["after_package"]
    assert "tensorflow_datasets" not in modules["after_package"]
    assert modules["after_package"] == modules["after_keras"], modules
    assert modules["lazy_loaded"] == []


@once_per_ci("jax")
def test_import_on_jax_loads_matplotlib_only_when_keras_does():
    # Keras (3.15) imports matplotlib through `keras.visualization` when it is
    # installed; with matplotlib made unimportable, the package still imports
    # and loads no plotting module of its own.
    program = 'sys.modules["matplotlib"] = None\n' + PROGRAM.replace("import json, sys\n", "")
    modules = _run("jax", "import json, sys\n" + program)
    assert modules["lazy_loaded"] == []


def test_lazy_names_resolve_and_are_listed():
    for name in kps.__all__:
        assert getattr(kps, name) is not None, name
        assert name in dir(kps)
    assert kps.plots is sys.modules["keras_pid_ssl.plots"]
    assert kps.export_backbone is sys.modules["keras_pid_ssl.export"].export_backbone
    for name in kps.callbacks.__all__:
        assert getattr(kps.callbacks, name).__name__ == name
        assert name in dir(kps.callbacks)


def test_from_import_of_a_lazy_name_works():
    from keras_pid_ssl import export_backbone
    from keras_pid_ssl import training
    from keras_pid_ssl.callbacks import ProgressBar

    assert training.__name__ == "keras_pid_ssl.training"
    assert export_backbone.__module__ == "keras_pid_ssl.export"
    assert ProgressBar.__module__ == "keras_pid_ssl.callbacks.progress"


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        kps.not_a_name  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'NotACallback'"):
        kps.callbacks.NotACallback  # noqa: B018
