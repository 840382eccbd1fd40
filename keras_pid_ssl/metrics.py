"""Accuracy metrics shared by the training monitors and downstream evaluation."""

import numpy as np


def top_k_accuracy(scores, labels, k=1):
    """Fraction of samples whose label is among the `k` highest scores.

    Ties are broken by class index (a stable sort of the negated scores), so
    the result does not depend on the sort implementation.

    Args:
        scores: `(num_samples, num_classes)` class scores (logits,
            probabilities or kNN votes).
        labels: `(num_samples,)` integer labels.
        k: how many of the highest scores count.

    Returns:
        A Python float in [0, 1].

    Example:

    >>> scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    >>> top_k_accuracy(scores, np.array([1, 1]), k=1)
    0.5
    >>> top_k_accuracy(scores, np.array([1, 1]), k=2)
    1.0
    """
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))
