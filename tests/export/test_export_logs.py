"""export_backbone keeps absl's and TensorFlow's INFO lines out of the user's console."""

import logging

import keras
import pytest

import keras_pid_ssl as kps

pytest.importorskip("tensorflow")
absl_logging = pytest.importorskip("absl.logging")

# On torch the SavedModel is written by a subprocess whose output is captured.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="in-process SavedModel export (TF, JAX)"
)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _export_with_info_verbosity(tmp_path, verbose):
    """Exports with absl at INFO (as `absl.app` sets it); the records that got through."""
    encoder = kps.backbones.SmallConvNet(input_shape=(8, 8, 1), widths=(4,))
    handler = _Records()
    loggers = [logging.getLogger("absl"), logging.getLogger("tensorflow")]
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        kps.export_backbone(encoder, str(tmp_path / f"backbone_{verbose}"), verbose=verbose)
        after = absl_logging.get_verbosity()
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        absl_logging.set_verbosity(before)
    return handler.records, after


def test_quiet_export_logs_no_info_and_restores_the_verbosity(tmp_path):
    records, after = _export_with_info_verbosity(tmp_path, verbose=False)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []
    assert after == absl_logging.INFO


def test_verbose_export_shows_the_info_lines(tmp_path, capsys):
    records, after = _export_with_info_verbosity(tmp_path, verbose=True)
    messages = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any("fingerprint" in m for m in messages), messages
    assert after == absl_logging.INFO
