"""kps.evaluation's fine-tuning classifier, against a NumPy reference."""

import keras
import numpy as np

from keras_pid_ssl.evaluation import _finetune_classifier


def test_finetune_head_sees_features_standardised_on_the_labelled_subset():
    # Features at a scale of 1e-3, where SGD on raw features barely moves the head;
    # pixel 0 is dark in every labelled image (a constant feature, like a dead unit).
    backbone = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Rescaling(1e-3)]
    )
    rng = np.random.default_rng(0)
    labelled = rng.integers(0, 256, (32, 4, 4, 1)).astype("uint8")
    labelled[:, 0, 0] = 0
    classifier = _finetune_classifier(backbone, labelled, num_classes=3, backbone_lr_scale=0.1)

    def features(images):
        return images.reshape(len(images), 16).astype("float64") / 255.0 * 1e-3

    mean, std = features(labelled).mean(0), features(labelled).std(0)
    std[std == 0] = 1.0  # a constant feature keeps its scale
    kernel, bias = (np.asarray(w) for w in classifier.get_layer("classifier").weights)
    new = rng.integers(1, 256, (8, 4, 4, 1)).astype("uint8")  # pixel 0 no longer dark
    for images in (labelled, new):
        expected = (features(images) - mean) / std @ kernel + bias
        logits = classifier.predict(images.astype("float32") / 255.0, verbose=0)
        np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-3, atol=1e-3)
    # The standardised features have unit scale, so the logits are not ~0.
    assert np.abs(expected).mean() > 0.1
