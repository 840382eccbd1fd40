"""Root pytest configuration: the namespace of the docstring examples.

`python -m pytest --doctest-modules keras_pid_ssl` runs every `>>>` example in
the package. Each example sees `np` (NumPy), `keras` and `kps`
(`keras_pid_ssl`) without importing them, and starts from a fresh Keras state
and seed 0 (Keras, hence Python, NumPy and the backend), so printed numbers
and layer names do not depend on which examples ran before. The test suite's
own fixtures live in tests/conftest.py; this fixture leaves non-doctest items
alone.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

DOCTEST_SEED = 0


@pytest.fixture(autouse=True)
def doctest_globals(request):
    """Provides `np`, `keras`, `kps` to doctests and seeds each example."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import keras_pid_ssl

    namespace = request.getfixturevalue("doctest_namespace")
    namespace.update(np=np, keras=keras, kps=keras_pid_ssl)
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(DOCTEST_SEED)
    np.random.seed(DOCTEST_SEED)
    yield
