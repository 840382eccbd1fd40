"""The PID loss: a re-calibrated base loss plus redundancy/synergy terms."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import sum_over_replicas
from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.information.gaussian_pid import gaussian_pid
from keras_pid_ssl.information.gaussian_pid import per_dimension_pid
from keras_pid_ssl.losses.barlow_twins import BarlowTwinsLoss
from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.losses.vicreg import VICRegLoss
from keras_pid_ssl.utils.autodiff import gradient
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_open_unit_interval
from keras_pid_ssl.utils.validation import check_positive

COEFFICIENT_NAMES = ("invariance_weight", "w_joint", "w_red", "w_syn")
_BASES = {"barlow_twins": BarlowTwinsLoss, "vicreg": VICRegLoss}


def _make_base(base):
    if isinstance(base, SSLLoss):
        return base
    if isinstance(base, dict):
        return keras.saving.deserialize_keras_object(base)
    if isinstance(base, str) and base in _BASES:
        return _BASES[base]()
    raise ValueError(
        f"`base` must be 'barlow_twins', 'vicreg' or an SSLLoss instance. Received: base={base!r}"
    )


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PIDLoss(SSLLoss):
    """ "More synergy, less redundancy" on top of Barlow Twins or VICReg.

    docs/spec.md, section 3 (this project's reading of Mohamadi et al., ICIP 2023):

        L = base(Z1, Z2)   with its invariance term times `invariance_weight`
            + w_joint * sum_k (1 - R2_k)
            + w_red   * sum_k min(r1_k^2, r2_k^2)
            - w_syn   * sum_k (R2_k - max(r1_k^2, r2_k^2))

    where, per projector dimension k, r1 and r2 are the correlations of each
    view's embedding with the target embedding T and R2 the share of T's
    variance that both views explain together (see `gaussian_pid`). In the
    default `units="r2"` every term is bounded in [0, 1] per dimension;
    `units="nats"` uses -I12, redundancy and synergy in nats instead. Terms are
    summed over dimensions, like Barlow Twins' terms.

    `invariance_weight` multiplies the base's invariance term (1.0 is the
    original method; lowering it is the re-calibration). With all three PID
    weights at 0 and `invariance_weight=1` the loss equals the base loss.

    The four coefficients are non-trainable float32 variables, so
    `PIDProtocol` can move them during compiled training on every backend and
    a checkpoint restores them. The constructor values are the PID-stage
    values (`pid_coefficients`); the variables start there too.

    Args:
        base: `"barlow_twins"`, `"vicreg"` or an `SSLLoss` instance.
        invariance_weight: multiplier of the base's invariance term.
        w_joint: weight of the joint-information term.
        w_red: weight of the redundancy penalty.
        w_syn: weight of the synergy reward.
        units: `"r2"` (bounded, default) or `"nats"`.
        estimator: `"diagonal"` (per dimension, O(N D)) or `"full"` (whole
            vectors, log-determinants, O(D^3): small projectors only; its
            terms are whole-vector values, with R^2 = 1 - exp(-2 I)).
        epsilon: variance floor of the standardisation.
        delta: correlation clip (see `per_dimension_pid`).

    `terms(z1, z2, t)` returns the weighted base terms, `joint_term`,
    `redundancy_term`, `synergy_term` (weighted), the PID atoms (nats, mean over
    dimensions), the current coefficients and `loss`. `gradient_ratio(z1, z2,
    t)` is the norm of the PID terms' gradient next to the base loss's. The
    target `t` is an embedding (`target_kind = "embedding"`);
    `PseudoLabelPIDLoss` is the same objective with a pseudo-label target.

    Example:

    >>> import numpy as np
    >>> z1, z2, t = np.random.normal(size=(3, 16, 8)).astype("float32")
    >>> loss = PIDLoss(base="barlow_twins", w_syn=1.0)
    >>> sorted(loss.terms(z1, z2, t))[:3]
    ['i1', 'i12', 'i2']
    """

    target_kind = "embedding"
    estimators = ("diagonal", "full")
    # Weighted terms added to the loss beyond the base and the three PID terms.
    extra_term_names = ()

    def __init__(
        self,
        base="barlow_twins",
        invariance_weight=1.0,
        w_joint=0.0,
        w_red=0.0,
        w_syn=1.0,
        units="r2",
        estimator=None,
        epsilon=1e-5,
        delta=1e-4,
        **kwargs,
    ):
        estimator = self.estimators[0] if estimator is None else estimator
        for name, value in zip(
            COEFFICIENT_NAMES, (invariance_weight, w_joint, w_red, w_syn), strict=True
        ):
            check_non_negative(name, value)
        check_choice("units", units, ("r2", "nats"))
        check_choice("estimator", estimator, self.estimators)
        check_positive("epsilon", epsilon)
        check_open_unit_interval("delta", delta)
        super().__init__(**kwargs)
        self.base = _make_base(base)
        self.units = units
        self.estimator = estimator
        self.epsilon = float(epsilon)
        self.delta = float(delta)
        self.pid_coefficients = dict(
            zip(
                COEFFICIENT_NAMES,
                (float(invariance_weight), float(w_joint), float(w_red), float(w_syn)),
                strict=True,
            )
        )
        self.coefficients = {
            name: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(value),
                trainable=False,
                dtype="float32",
                name=name,
            )
            for name, value in self.pid_coefficients.items()
        }

    @property
    def base_coefficients(self):
        """The coefficients that make this loss equal to its base loss."""
        return {"invariance_weight": 1.0, "w_joint": 0.0, "w_red": 0.0, "w_syn": 0.0}

    def set_coefficients(self, **values):
        """Assigns new coefficient values (names from `COEFFICIENT_NAMES`)."""
        for name, value in values.items():
            check_choice("coefficient", name, COEFFICIENT_NAMES)
            self.coefficients[name].assign(value)

    @property
    def pid_term_names(self):
        """The weighted terms beyond the base loss (what `gradient_ratio` weighs)."""
        return ("joint_term", "redundancy_term", "synergy_term") + self.extra_term_names

    @property
    def diagnostic_names(self):
        """Reported values that are not terms of the loss: atoms (nats)."""
        return ATOM_NAMES

    @property
    def term_names(self):
        return (
            tuple(self.base.term_names)
            + self.pid_term_names
            + self.diagnostic_names
            + COEFFICIENT_NAMES
        )

    def prepare_target(self, t):
        """The target as the estimator reads it: float32, global batch."""
        return self._prepare(t)[0]

    def pid_terms(self, z1, z2, t):
        """Unweighted PID terms (joint, redundancy, synergy), extra weighted
        terms (none here) and the diagnostics (atoms, nats)."""
        if self.estimator == "diagonal":
            per_dim = per_dimension_pid(z1, z2, t, self.epsilon, self.delta)
            atoms = {name: ops.mean(per_dim[name]) for name in ATOM_NAMES}
            if self.units == "r2":
                single_min = ops.minimum(per_dim["r1_sq"], per_dim["r2_sq"])
                single_max = ops.maximum(per_dim["r1_sq"], per_dim["r2_sq"])
                joint = ops.sum(1.0 - per_dim["joint_r2"])
                redundancy = ops.sum(single_min)
                synergy = ops.sum(per_dim["joint_r2"] - single_max)
            else:
                joint = -ops.sum(per_dim["i12"])
                redundancy = ops.sum(per_dim["redundancy"])
                synergy = ops.sum(per_dim["synergy"])
            return (joint, redundancy, synergy), {}, atoms
        atoms = gaussian_pid(z1, z2, t, estimator="full", epsilon=self.epsilon)
        if self.units == "r2":
            r2 = {k: 1.0 - ops.exp(-2.0 * atoms[k]) for k in ("i1", "i2", "i12")}
            joint = 1.0 - r2["i12"]
            redundancy = ops.minimum(r2["i1"], r2["i2"])
            synergy = r2["i12"] - ops.maximum(r2["i1"], r2["i2"])
        else:
            joint, redundancy, synergy = -atoms["i12"], atoms["redundancy"], atoms["synergy"]
        return (joint, redundancy, synergy), {}, atoms

    def terms(self, z1, z2, t):
        z1, z2 = self._prepare(z1, z2)
        t = self.prepare_target(t)
        out = dict(self.base.terms(z1, z2))
        coef = {name: ops.convert_to_tensor(v) for name, v in self.coefficients.items()}
        del out["loss"]
        # Re-calibration: only the invariance term is re-weighted; the base's
        # decorrelation terms always stay (they prevent dimensional collapse).
        inv = self.base.invariance_term
        out[inv] = coef["invariance_weight"] * out[inv]
        (joint, redundancy, synergy), extra, diagnostics = self.pid_terms(z1, z2, t)
        out["joint_term"] = coef["w_joint"] * joint
        out["redundancy_term"] = coef["w_red"] * redundancy
        out["synergy_term"] = -coef["w_syn"] * synergy
        out.update(extra)
        out["loss"] = sum(out[name] for name in self.base.term_names + self.pid_term_names)
        out.update(diagnostics)
        out.update(coef)
        return out

    def gradient_ratio(self, z1, z2, t):
        """||d(PID terms)/dz|| / ||d(base)/dz|| at the embeddings `z1`, `z2`.

        A diagnostic (no gradient flows through it): how strong the PID terms
        (`pid_term_names`) pull on the embeddings next to the base loss. Under
        `tf.distribute` the squared norms are summed over replicas, so the
        ratio is that of the global batch.
        """
        z = ops.stop_gradient(ops.stack([z1, z2]))
        t = ops.stop_gradient(ops.convert_to_tensor(t))

        def part(names):
            return lambda z: sum(self.terms(z[0], z[1], t)[name] for name in names)

        pid_sq = sum_over_replicas(ops.sum(ops.square(gradient(part(self.pid_term_names), z))))
        base_sq = sum_over_replicas(ops.sum(ops.square(gradient(part(self.base.term_names), z))))
        return ops.sqrt(pid_sq) / (ops.sqrt(base_sq) + 1e-12)

    def call(self, z1, z2, t):
        return self.terms(z1, z2, t)["loss"]

    def get_config(self):
        config = super().get_config()
        config.update(
            base=keras.saving.serialize_keras_object(self.base),
            units=self.units,
            estimator=self.estimator,
            epsilon=self.epsilon,
            delta=self.delta,
            **self.pid_coefficients,
        )
        return config
