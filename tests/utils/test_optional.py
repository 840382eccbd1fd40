"""Optional dependencies: TensorFlow-free import, and errors that name the extra."""

import os
import subprocess
import sys

import keras
import pytest

from keras_pid_ssl.utils.optional import import_optional
from keras_pid_ssl.utils.optional import import_tensorflow

# Runs with TensorFlow made unimportable (None in sys.modules), as in an
# environment installed without the `tensorflow` extra.
PROGRAM = """
import sys
sys.modules["tensorflow"] = None
sys.modules["tensorflow_datasets"] = None
import numpy as np
import keras_pid_ssl as kps

model = kps.presets.pid_ssl(kps.backbones.SmallConvNet(input_shape=(8, 8, 1), widths=(4,)),
                            projector_dims=(8, 4))
views = np.random.default_rng(0).uniform(size=(3, 8, 8, 8, 1)).astype("float32")
model.compile(optimizer="adam")
logs = model.train_on_batch(dict(view1=views[0], view2=views[1], target=views[2]), return_dict=True)
assert np.isfinite(logs["loss"]), logs
try:
    kps.data.ssl_dataset(np.zeros((8, 8, 8, 1), np.uint8), batch_size=4)
except ImportError as error:
    print("IMPORT ERROR:", error)
"""


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="TensorFlow-free runs are JAX and torch runs"
)
def test_the_package_imports_and_trains_without_tensorflow():
    # In this suite's backend: the JAX and torch suites each run it once.
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPORT ERROR: kps.data's tf.data pipelines needs the `tensorflow` package" in (
        result.stdout
    )
    assert "keras-pid-ssl[tensorflow]" in result.stdout


def test_a_missing_module_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ImportError, match=r"SavedModel export needs the `tensorflow` package.*"):
        import_tensorflow("SavedModel export")
    with pytest.raises(ImportError, match=r"pip install 'keras-pid-ssl\[tensorflow\]'"):
        import_optional("tensorflow", "X")
    with pytest.raises(ImportError, match=r"pip install no_such_module_kps"):
        import_optional("no_such_module_kps", "X")


def test_an_imported_module_is_returned_without_importlib(monkeypatch):
    # AutoGraph traces the tf.data functions that call `import_tensorflow`;
    # going through importlib there makes it warn about `_gcd_import`.
    import importlib

    def refuse(name, *args, **kwargs):
        raise AssertionError(f"importlib.import_module({name!r}) was called")

    monkeypatch.setattr(importlib, "import_module", refuse)
    assert import_optional("json", "a feature") is sys.modules["json"]


def test_tensorflow_info_logs_are_hidden_unless_the_user_chose_a_level(monkeypatch):
    from keras_pid_ssl.utils.optional import quiet_tensorflow_info_logs

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet_tensorflow_info_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_tensorflow_info_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
