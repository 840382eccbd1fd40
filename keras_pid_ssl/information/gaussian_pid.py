"""Gaussian PID estimators from batch statistics (docs/spec.md, section 2).

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

Sample size. Both estimators are plug-in estimates from one batch of N
samples and are biased upwards. For independent inputs an information
between a d_A- and a d_B-dimensional Gaussian averages about
`d_A * d_B / (2 N)` nats, so the diagonal estimator reports about 1/(2N)
nats per dimension for I1 and I2, 1/N for I12 and 0.18/N for synergy and
redundancy, and the full one about `d_T * d_Z / (2 N)` for I1 and I2 and
`d_T * d_Z / N` for I12 (tested). The estimators warn, once per input shape,
where the estimate is unreliable: N < 10 for the diagonal estimator (the
correlations' standard error, about 1/sqrt(N), is then a third or more), N < 2D
for the full one (the sample covariance of (Z1, Z2) is singular and the ridge
decides I12).
"""

import warnings

import numpy as np
from keras import ops

from keras_pid_ssl.utils.batch_stats import standardize
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_embeddings
from keras_pid_ssl.utils.validation import check_open_unit_interval
from keras_pid_ssl.utils.validation import check_positive

ATOM_NAMES = ("i1", "i2", "i12", "redundancy", "unique1", "unique2", "synergy")

# Smallest batch for which the diagonal estimator does not warn.
MIN_DIAGONAL_BATCH = 10

# Input shapes already warned about (one warning per estimator and shape).
_warned_shapes = set()


def _from_list(name, x):
    """Python lists (and tuples) as float32 arrays; other inputs unchanged."""
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype="float32")
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`{name}` must be a rectangular array of numbers of shape "
                f"(batch_size, dim), e.g. a NumPy array or a list of equal-length lists "
                f"of floats. Converting it failed with: {error}"
            ) from None
    return x


def _static_dims(x):
    return tuple(None if d is None else int(d) for d in x.shape)


def _check_same_batch(name, **tensors):
    sizes = {key: _static_dims(x)[0] for key, x in tensors.items()}
    known = {key: n for key, n in sizes.items() if n is not None}
    if len(set(known.values())) > 1:
        raise ValueError(
            f"`{name}` expects inputs with the same batch size (one row per sample). "
            f"Received batch sizes {known}."
        )


def _warn_small_batch(estimator, n, d, minimum, reason):
    """Warns once per (estimator, N, D) when N < minimum; static shapes only."""
    if n is None or d is None or n >= minimum or (estimator, n, d) in _warned_shapes:
        return
    _warned_shapes.add((estimator, n, d))
    warnings.warn(
        f"The {estimator} Gaussian PID estimator got N={n} samples for D={d} dimensions "
        f"({reason}). Its atoms are unreliable and biased upwards; use batches of at least "
        f"{minimum} samples.",
        stacklevel=3,
    )


def mmi_atoms(i1, i2, i12):
    """The MMI atoms (Barrett 2015) of I1 = I(T; Z1), I2 = I(T; Z2), I12 = I(T; Z1, Z2).

    Works elementwise on tensors of any shape. Callers ensure
    I12 >= max(I1, I2), which keeps every atom non-negative.

    Returns:
        A dict with the keys of `ATOM_NAMES`.

    Example:

    >>> atoms = mmi_atoms(np.float32(0.5), np.float32(0.25), np.float32(1.0))
    >>> {k: round(float(v), 2) for k, v in atoms.items() if k != "i12"}
    {'i1': 0.5, 'i2': 0.25, 'redundancy': 0.25, 'unique1': 0.25, 'unique2': 0.0, 'synergy': 0.5}
    """
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


def per_dimension_pid(z1, z2, t, epsilon=1e-5, delta=1e-4):
    """Per-dimension Gaussian correlations, R^2 values and PID atoms.

    Dimension k of Z1, Z2 and T is treated as a trivariate Gaussian (the
    "diagonal" estimator, O(N D)). With standardised columns u and batch means:

        r1 = <u1 ut>, r2 = <u2 ut>, r12 = <u1 u2>   clipped to |r| <= 1 - delta
        R2 = (r1^2 + r2^2 - 2 r1 r2 r12) / (1 - r12^2)
             clipped to [max(r1^2, r2^2), (1 - delta)^2]
        I1 = -1/2 ln(1 - r1^2),  I2 = -1/2 ln(1 - r2^2),  I12 = -1/2 ln(1 - R2)

    R2 is the squared multiple correlation of T on (Z1, Z2): the share of the
    target's variance explained by both views. The clips keep every log away
    from log(0), so constant or perfectly correlated columns give finite values
    and gradients, and they are consistent: R2 never falls below either single
    r^2 (so synergy >= 0) and shares the single correlations' ceiling
    (1 - delta)^2, so identical inputs (T = Z1 = Z2, columns of variance at
    least `epsilon (1 - delta) / delta`, about 0.1 by default) give zero
    synergy. I1, I2 and I12 are each at most -1/2 ln(delta (2 - delta)) nats
    (about 4.26 for delta = 1e-4), and so is every atom.

    The standardisation's `epsilon` shrinks every correlation by
    `sqrt(var_a / (var_a + epsilon) * var_b / (var_b + epsilon))`, as if each
    input carried its own noise of variance `epsilon`. For columns with
    variance well above `epsilon` this is negligible, but identical columns
    of variance below about `epsilon / delta` then stay under the clip and
    look like two noisy copies of the target: up to 1/2 ln(4/3) ~ 0.14 nats
    of synergy. Scale such inputs up, or lower `epsilon`.

    With fewer than 10 samples the estimates are unreliable; this warns once
    per input shape (see the module docstring for the bias).

    Args:
        z1, z2, t: float tensors of shape `(batch_size, dim)` (NumPy arrays
            and Python lists are converted).
        epsilon: variance floor of the standardisation.
        delta: distance of the clipped correlations from +-1, in (0, 1).

    Returns:
        A dict of `(dim,)` tensors: `r1_sq`, `r2_sq`, `joint_r2` (R^2 units)
        and the atoms of `ATOM_NAMES` (nats).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 4096, 1)).astype("float32")
    >>> per_dim = per_dimension_pid(a, b, a + b)   # each view explains half of T
    >>> [round(float(per_dim[k][0]), 1) for k in ("r1_sq", "r2_sq", "joint_r2")]
    [0.5, 0.5, 1.0]
    """
    check_positive("epsilon", epsilon)
    check_open_unit_interval("delta", delta)
    z1, z2, t = (_from_list(n, x) for n, x in (("z1", z1), ("z2", z2), ("t", t)))
    check_embeddings("per_dimension_pid", z1, z2, t)
    z1, z2, t = (ops.cast(x, "float32") for x in (z1, z2, t))
    n, d = _static_dims(z1)
    _warn_small_batch(
        "diagonal",
        n,
        d,
        MIN_DIAGONAL_BATCH,
        f"N < {MIN_DIAGONAL_BATCH}: each correlation has a standard error of about 1/sqrt(N)",
    )
    u1, u2, ut = (standardize(x, epsilon) for x in (z1, z2, t))
    bound = ops.convert_to_tensor(1.0 - delta, "float32")
    r1 = ops.clip(ops.mean(u1 * ut, axis=0), -bound, bound)
    r2 = ops.clip(ops.mean(u2 * ut, axis=0), -bound, bound)
    r12 = ops.clip(ops.mean(u1 * u2, axis=0), -bound, bound)
    r1_sq, r2_sq = ops.square(r1), ops.square(r2)
    # Stable form of R2, anchored at the stronger view (r_hi^2 = max(r1^2, r2^2)):
    #   R2 = r_hi^2 + (r_lo - r_hi r12)^2 / (1 - r12^2),
    # algebraically the ratio above; the added term (what the weaker view explains
    # beyond the stronger one) is >= 0 by construction, whereas the ratio divides
    # a difference of O(1) terms by 1 - r12^2, which is as small as ~2 delta near
    # the clip, and loses most of float32's digits there.
    first_is_stronger = r1_sq >= r2_sq
    r_hi = ops.where(first_is_stronger, r1, r2)
    r_lo = ops.where(first_is_stronger, r2, r1)
    single_max = ops.square(r_hi)
    joint_r2 = single_max + ops.square(r_lo - r_hi * r12) / (1.0 - ops.square(r12))
    # The clip of docs/spec.md, section 2, [max(r1^2, r2^2), (1 - delta)^2]: the
    # ceiling is the single correlations' ceiling squared in the same float32
    # arithmetic, and the floor applied last so that I12 >= max(I1, I2)
    # survives rounding.
    joint_r2 = ops.maximum(ops.minimum(joint_r2, ops.square(bound)), single_max)
    # I = -1/2 ln(1 - R^2) for Gaussians; log1p is accurate for small R^2.
    i1 = -0.5 * ops.log1p(-r1_sq)
    i2 = -0.5 * ops.log1p(-r2_sq)
    i12 = -0.5 * ops.log1p(-joint_r2)
    out = {"r1_sq": r1_sq, "r2_sq": r2_sq, "joint_r2": joint_r2}
    out.update(mmi_atoms(i1, i2, i12))
    return out


def _correlation(a, b):
    """Batch mean of a^T b for standardised columns: the cross-correlation matrix."""
    n = ops.cast(ops.shape(a)[0], "float32")
    return ops.matmul(ops.transpose(a), b) / n


def _logdet(matrix):
    # Cholesky: the matrices are symmetric positive definite thanks to the
    # ridge, and this is differentiable on every backend.
    return 2.0 * ops.sum(ops.log(ops.diagonal(ops.cholesky(matrix))))


def _mutual_information(a_columns, b_columns, ridge):
    """I(A; B) of standardised column blocks, with `ridge` on every correlation matrix.

    Computed as 1/2 [logdet S_A - logdet S_A|B] with the Schur complement
    S_A|B = S_A - S_AB S_B^-1 S_BA (from a Cholesky factor of S_B), which is
    1/2 [logdet S_A + logdet S_B - logdet S_AB] exactly but does not subtract
    two large, separately rounded log-determinants: it stays accurate in
    float32 when S_B is ill-conditioned (collinear or repeated sources).
    """
    u_a = ops.concatenate(a_columns, axis=1)
    u_b = ops.concatenate(b_columns, axis=1)
    eye_a = ops.eye(ops.shape(u_a)[1], dtype="float32")
    eye_b = ops.eye(ops.shape(u_b)[1], dtype="float32")
    s_a = _correlation(u_a, u_a) + ridge * eye_a
    s_b = _correlation(u_b, u_b) + ridge * eye_b
    w = ops.solve_triangular(ops.cholesky(s_b), _correlation(u_b, u_a), lower=True)
    s_a_given_b = s_a - ops.matmul(ops.transpose(w), w)
    return 0.5 * (_logdet(s_a) - _logdet(s_a_given_b))


def gaussian_mutual_information(a, b, epsilon=1e-5, ridge=1e-4):
    """I(A; B) in nats for multivariate Gaussians, from batch samples.

    `I(A; B) = 1/2 [logdet S_A + logdet S_B - logdet S_AB]` with S the
    correlation matrices (columns standardised) plus `ridge * I`, which keeps
    the log-determinants finite when dimensions outnumber samples or columns
    are collinear. The ridge acts like independent noise of variance `ridge`
    on every standardised column, so perfectly dependent inputs give a finite
    value. O(D^3): meant for low-dimensional inputs.

    Args:
        a, b: `(batch_size, dim_a)` and `(batch_size, dim_b)` samples (NumPy
            arrays and Python lists are converted).
        epsilon: variance floor of the standardisation.
        ridge: added to the diagonal of every correlation matrix (> 0).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(4096, 1)).astype("float32")
    >>> b = a + rng.normal(size=(4096, 1)).astype("float32")
    >>> round(float(gaussian_mutual_information(a, b)), 2)  # population: -1/2 ln(1/2) = 0.347
    0.34
    """
    check_positive("epsilon", epsilon)
    check_positive("ridge", ridge)
    a, b = _from_list("a", a), _from_list("b", b)
    check_embeddings("gaussian_mutual_information", a)
    check_embeddings("gaussian_mutual_information", b)
    _check_same_batch("gaussian_mutual_information", a=a, b=b)
    a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    (n, da), (_, db) = _static_dims(a), _static_dims(b)
    d = None if da is None or db is None else da + db
    _warn_small_batch(
        "full (mutual information)",
        n,
        d,
        None if d is None else 2 * d,
        "N < 2D: the sample covariance of (A, B) is singular and the ridge decides I(A; B)",
    )
    return _mutual_information([standardize(a, epsilon)], [standardize(b, epsilon)], ridge)


def _full_pid(z1, z2, t, epsilon, ridge):
    u1, u2, ut = (standardize(x, epsilon) for x in (z1, z2, t))
    # The ridge acts as independent noise on every source column, and two
    # independently noisy looks at the same source tell more than one: with
    # I_i = I(T; Z_i) but I12 = I(T; Z1, Z2), identical sources that predict T
    # well would show about 1/2 ln(4/3) ~ 0.14 nats of synergy per well-predicted
    # direction. So each single source is read twice, I_i = I(T; (Z_i, Z_i)),
    # the same two noisy looks the pair gets (equivalently: half the ridge on
    # Z_i). Identical sources then give bitwise the same I1 and I12: synergy 0.
    i1 = _mutual_information([ut], [u1, u1], ridge)
    i2 = _mutual_information([ut], [u2, u2], ridge)
    i12 = _mutual_information([ut], [u1, u2], ridge)
    # Exact informations satisfy 0 <= I_i <= I12; float32 rounding (and the
    # ridge, when one source is useless) can break that slightly, which would
    # show up as negative atoms: clamp to the exact bounds, so synergy >= 0.
    i1, i2 = ops.maximum(i1, 0.0), ops.maximum(i2, 0.0)
    i12 = ops.maximum(i12, ops.maximum(i1, i2))
    return mmi_atoms(i1, i2, i12)


def gaussian_pid(z1, z2, t, estimator="diagonal", epsilon=1e-5, delta=1e-4, ridge=1e-4):
    """Batch estimate of the PID atoms of I(T; Z1, Z2), in nats.

    Args:
        z1, z2: source embeddings, `(batch_size, dim)` (NumPy arrays and
            Python lists are converted).
        t: target embedding, `(batch_size, dim)` for `"diagonal"`; any width
            for `"full"`.
        estimator: `"diagonal"` treats each dimension k as its own Gaussian
            PID and returns the mean over k (O(N D), the training estimator;
            see `per_dimension_pid`); `"full"` treats Z1, Z2, T as
            multivariate Gaussians and uses log-determinants (O(D^3), for
            diagnostics on 8-128 dims). The full estimator computes
            I(T; Z_i) as I(T; (Z_i, Z_i)) so that its ridge treats single and
            joint sources alike: identical or rank-deficient sources give
            zero synergy.
        epsilon: variance floor of the standardisation.
        delta: correlation clip of the diagonal estimator, in (0, 1).
        ridge: added to the correlation matrices of the full estimator (> 0).

    Returns:
        A dict with scalar tensors `i1, i2, i12, redundancy, unique1, unique2,
        synergy` (nats; per dimension on average for `"diagonal"`, for the
        whole vectors for `"full"`). Every atom is >= 0.

    Warns once per input shape when the batch is too small for the estimate
    (N < 10 for `"diagonal"`, N < 2D for `"full"`); both estimators are
    biased upwards at small N (module docstring).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> a, b, noise = rng.normal(size=(3, 4096, 4)).astype("float32")
    >>> atoms = gaussian_pid(a, b, a + b + 0.5 * noise)   # mostly synergy
    >>> round(float(atoms["synergy"]), 1), round(float(atoms["redundancy"]), 1)
    (0.8, 0.3)
    """
    check_choice("estimator", estimator, ("diagonal", "full"))
    if estimator == "diagonal":
        per_dim = per_dimension_pid(z1, z2, t, epsilon=epsilon, delta=delta)
        return {name: ops.mean(per_dim[name]) for name in ATOM_NAMES}
    check_positive("epsilon", epsilon)
    check_positive("ridge", ridge)
    z1, z2, t = (_from_list(n, x) for n, x in (("z1", z1), ("z2", z2), ("t", t)))
    check_embeddings("gaussian_pid", z1, z2)
    check_embeddings("gaussian_pid", t)
    _check_same_batch("gaussian_pid", z1=z1, z2=z2, t=t)
    z1, z2, t = (ops.cast(x, "float32") for x in (z1, z2, t))
    n, d = _static_dims(z1)
    _warn_small_batch(
        "full",
        n,
        d,
        None if d is None else 2 * d,
        "N < 2D: the sample covariance of (Z1, Z2) is singular and the ridge decides I12",
    )
    return _full_pid(z1, z2, t, epsilon, ridge)
