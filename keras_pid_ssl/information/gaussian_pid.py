"""Gaussian PID estimators from batch statistics (SPEC section 2).

Partial information decomposition (Williams & Beer 2010) of the joint mutual
information I(T; Z1, Z2) between two sources Z1, Z2 and a target T, with the
minimum-mutual-information (MMI) redundancy of Barrett (2015), which is the
exact PID for jointly Gaussian variables with a univariate target:

    redundancy = min(I1, I2)            I1 = I(T; Z1), I2 = I(T; Z2)
    unique_i   = I_i - redundancy
    synergy    = I12 - max(I1, I2)      I12 = I(T; Z1, Z2)

so that redundancy + unique1 + unique2 + synergy = I12 exactly. All values are
in nats. Written with `keras.ops` only, so it runs (and differentiates) on
every backend.
"""

from keras import ops

from keras_pid_ssl.utils.batch_stats import standardize
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_embeddings

ATOM_NAMES = ("i1", "i2", "i12", "redundancy", "unique1", "unique2", "synergy")


def per_dimension_pid(z1, z2, t, epsilon=1e-5, delta=1e-4):
    """Per-dimension Gaussian correlations, R^2 values and PID atoms.

    Dimension k of Z1, Z2 and T is treated as a trivariate Gaussian (the
    "diagonal" estimator, O(N D)). With standardised columns u and batch means:

        r1 = <u1 ut>, r2 = <u2 ut>, r12 = <u1 u2>   clipped to |r| <= 1 - delta
        R2 = (r1^2 + r2^2 - 2 r1 r2 r12) / (1 - r12^2)   clipped to [0, 1 - delta]

    R2 is the squared multiple correlation of T on (Z1, Z2): the share of the
    target's variance explained by both views. The clips bound every log away
    from log(0), so constant or perfectly correlated columns give finite values
    and finite gradients (at most -0.5 ln(delta (2 - delta)) nats, ~4.3 for the
    default delta).

    Args:
        z1, z2, t: float tensors of shape `(batch_size, dim)`.
        epsilon: variance floor of the standardisation.
        delta: distance of the clipped correlations from +-1.

    Returns:
        A dict of `(dim,)` tensors: `r1_sq`, `r2_sq`, `joint_r2` (R^2 units)
        and the atoms of `ATOM_NAMES` (nats).
    """
    check_embeddings("per_dimension_pid", z1, z2, t)
    z1, z2, t = (ops.cast(x, "float32") for x in (z1, z2, t))
    u1, u2, ut = (standardize(x, epsilon) for x in (z1, z2, t))
    bound = 1.0 - delta
    r1 = ops.clip(ops.mean(u1 * ut, axis=0), -bound, bound)
    r2 = ops.clip(ops.mean(u2 * ut, axis=0), -bound, bound)
    r12 = ops.clip(ops.mean(u1 * u2, axis=0), -bound, bound)
    r1_sq, r2_sq = ops.square(r1), ops.square(r2)
    joint_r2 = (r1_sq + r2_sq - 2.0 * r1 * r2 * r12) / (1.0 - ops.square(r12))
    joint_r2 = ops.clip(joint_r2, 0.0, bound)
    # I = -1/2 ln(1 - R^2) for Gaussians; log1p is accurate for small R^2.
    i1 = -0.5 * ops.log1p(-r1_sq)
    i2 = -0.5 * ops.log1p(-r2_sq)
    i12 = -0.5 * ops.log1p(-joint_r2)
    out = {"r1_sq": r1_sq, "r2_sq": r2_sq, "joint_r2": joint_r2}
    out.update(_mmi_atoms(i1, i2, i12))
    return out


def _mmi_atoms(i1, i2, i12):
    redundancy = ops.minimum(i1, i2)
    return {
        "i1": i1,
        "i2": i2,
        "i12": i12,
        "redundancy": redundancy,
        "unique1": i1 - redundancy,
        "unique2": i2 - redundancy,
        "synergy": i12 - ops.maximum(i1, i2),
    }


def _correlation_matrix(x, epsilon, ridge):
    u = standardize(x, epsilon)
    n = ops.cast(ops.shape(u)[0], "float32")
    corr = ops.matmul(ops.transpose(u), u) / n
    return corr + ridge * ops.eye(ops.shape(corr)[0], dtype="float32")


def _logdet(matrix):
    # Cholesky: the matrices are symmetric positive definite thanks to the
    # ridge, and this is differentiable on every backend.
    chol = ops.cholesky(matrix)
    return 2.0 * ops.sum(ops.log(ops.diagonal(chol)))


def gaussian_mutual_information(a, b, epsilon=1e-5, ridge=1e-4):
    """I(A; B) in nats for multivariate Gaussians, from batch samples.

    `I(A; B) = 1/2 [logdet S_A + logdet S_B - logdet S_AB]` with S the
    correlation matrices (columns standardised) plus `ridge * I`, which keeps
    the log-determinants finite when dimensions outnumber samples or columns
    are collinear. O(D^3): meant for low-dimensional inputs.

    Example:

    >>> import numpy as np
    >>> a = np.random.normal(size=(4096, 1)).astype("float32")
    >>> b = a + np.random.normal(size=(4096, 1)).astype("float32")
    >>> round(float(gaussian_mutual_information(a, b)), 1)  # -0.5 ln(1 - 1/2)
    0.3
    """
    a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    joint = ops.concatenate([a, b], axis=1)
    return 0.5 * (
        _logdet(_correlation_matrix(a, epsilon, ridge))
        + _logdet(_correlation_matrix(b, epsilon, ridge))
        - _logdet(_correlation_matrix(joint, epsilon, ridge))
    )


def gaussian_pid(z1, z2, t, estimator="diagonal", epsilon=1e-5, delta=1e-4, ridge=1e-4):
    """Batch estimate of the PID atoms of I(T; Z1, Z2), in nats.

    Args:
        z1, z2: source embeddings, `(batch_size, dim)`.
        t: target embedding, `(batch_size, dim)` for `"diagonal"`; any width
            for `"full"`.
        estimator: `"diagonal"` treats each dimension k as its own Gaussian
            PID and returns the mean over k (O(N D), the training estimator);
            `"full"` treats Z1, Z2, T as multivariate Gaussians and uses
            log-determinants (O(D^3), for diagnostics on 8-128 dims).
        epsilon: variance floor of the standardisation.
        delta: correlation clip of the diagonal estimator.
        ridge: added to the correlation matrices of the full estimator.

    Returns:
        A dict with scalar tensors `i1, i2, i12, redundancy, unique1, unique2,
        synergy` (nats; per dimension on average for `"diagonal"`).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 4096, 4)).astype("float32")
    >>> atoms = gaussian_pid(a, b, a + b)   # T = Z1 + Z2: mostly synergy
    >>> float(atoms["synergy"]) > float(atoms["redundancy"])
    True
    """
    check_choice("estimator", estimator, ("diagonal", "full"))
    if estimator == "diagonal":
        per_dim = per_dimension_pid(z1, z2, t, epsilon=epsilon, delta=delta)
        return {name: ops.mean(per_dim[name]) for name in ATOM_NAMES}
    check_embeddings("gaussian_pid", z1, z2)
    check_embeddings("gaussian_pid", t)
    i1 = gaussian_mutual_information(t, z1, epsilon, ridge)
    i2 = gaussian_mutual_information(t, z2, epsilon, ridge)
    i12 = gaussian_mutual_information(
        t,
        ops.concatenate([ops.cast(z1, "float32"), ops.cast(z2, "float32")], 1),
        epsilon,
        ridge,
    )
    # Sample estimates satisfy 0 <= I_i <= I12 in exact arithmetic; the ridge
    # and float32 rounding can break that by ~1e-6, which would show up as
    # tiny negative atoms, so clip to the exact bounds.
    i1, i2, i12 = (ops.maximum(x, 0.0) for x in (i1, i2, i12))
    i12 = ops.maximum(i12, ops.maximum(i1, i2))
    return _mmi_atoms(i1, i2, i12)
