"""kps.evaluation's fine-tuning classifier, against a NumPy reference."""

import keras
import numpy as np

from keras_pid_ssl.evaluation import _finetune_classifier


def test_finetune_head_sees_features_standardised_on_the_labelled_subset():
    # Features at a scale of 1e-3, where SGD on raw features barely moves the head.
    backbone = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Rescaling(1e-3)]
    )
    images = np.random.default_rng(0).integers(0, 256, (32, 4, 4, 1)).astype("uint8")
    classifier = _finetune_classifier(backbone, images, num_classes=3, backbone_lr_scale=0.1)

    features = images.reshape(32, 16).astype("float64") / 255.0 * 1e-3
    standardized = (features - features.mean(0)) / np.sqrt(features.var(0))
    kernel, bias = (np.asarray(w) for w in classifier.get_layer("classifier").weights)
    expected = standardized @ kernel + bias
    logits = np.asarray(classifier.predict(images.astype("float32") / 255.0, verbose=0))
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)
    # The standardised features have unit scale, so the logits are not ~0.
    assert np.abs(expected).mean() > 0.1
