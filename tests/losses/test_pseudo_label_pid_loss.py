"""PseudoLabelPIDLoss against a NumPy reference: terms, atoms, who gets which gradient.

The heads are given hand-set weights (each linear head reads its view's
first K columns, the joint MLP reads both), so every atom, synergy included,
is positive and the reference computes the logits itself.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.utils.autodiff import gradient

K, D, N, HIDDEN = 3, 4, 48, 8
ENTROPY = 0.9  # H(T) as PseudoLabelRefresh sets it: below 1 and not the batch's ln 3
GAIN = 2.0
WEIGHTS = {"invariance_weight": 0.5, "w_joint": 0.3, "w_red": 0.7, "w_syn": 1.1}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(N) % K).astype("int32")
    onehot = np.eye(K)[labels]
    z1 = rng.normal(size=(N, D))
    z2 = rng.normal(size=(N, D))
    z1[:, :K] += 1.5 * onehot
    z2[:, :K] += 1.5 * onehot
    return z1.astype("float32"), z2.astype("float32"), labels


def _head_weights():
    """Kernels and biases of head1, head2, the joint hidden layer and joint head."""
    reader = np.zeros((D, K))
    reader[:K, :K] = GAIN * np.eye(K)
    hidden = np.zeros((2 * D, HIDDEN))
    hidden[:K, :K] = np.eye(K)  # z1's label columns
    hidden[D : D + K, K : 2 * K] = np.eye(K)  # z2's
    hidden_bias = np.full(HIDDEN, 2.0)  # keeps the ReLU in its linear part
    joint = np.zeros((HIDDEN, K))
    joint[:K] = GAIN * np.eye(K)
    joint[K : 2 * K] = GAIN * np.eye(K)
    zeros = np.zeros(K)
    return [reader, zeros, reader.copy(), zeros, hidden, hidden_bias, joint, zeros]


def _loss(units="nats", alpha=0.4, ready=1.0, **kwargs):
    loss = kps.losses.PseudoLabelPIDLoss(
        num_clusters=K, joint_hidden_dims=(HIDDEN,), units=units, **{**WEIGHTS, **kwargs}
    )
    loss.build((None, D))
    heads = loss.heads
    layers = [heads.head1, heads.head2] + heads.joint_layers
    values = _head_weights()
    for i, layer in enumerate(layers):
        layer.kernel.assign(values[2 * i].astype("float32"))
        layer.bias.assign(values[2 * i + 1].astype("float32"))
    loss.set_state(ready=ready, label_entropy=ENTROPY, supervision_weight=alpha)
    return loss


def _ce(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


def numpy_reference(z1, z2, labels, units, alpha):
    """The loss of PseudoLabelPIDLoss's docstring, from the hand-set heads, in float64."""
    w1, b1, w2, b2, wh, bh, wj, bj = _head_weights()
    z1, z2 = z1.astype("float64"), z2.astype("float64")
    hidden = np.maximum(np.concatenate([z1, z2], axis=1) @ wh + bh, 0.0)
    ce1, ce2, ce12 = (
        _ce(z1 @ w1 + b1, labels),
        _ce(z2 @ w2 + b2, labels),
        _ce(hidden @ wj + bj, labels),
    )
    i1, i2 = max(ENTROPY - ce1, 0.0), max(ENTROPY - ce2, 0.0)
    i12 = max(ENTROPY - ce12, i1, i2)
    red, syn = min(i1, i2), i12 - max(i1, i2)
    if units == "nats":
        joint, red_u, syn_u = -i12, red, syn
    else:
        joint, red_u, syn_u = 1.0 - i12 / ENTROPY, red / ENTROPY, syn / ENTROPY
    base = kps.losses.BarlowTwinsLoss().terms(z1.astype("float32"), z2.astype("float32"))
    terms = {
        "invariance": WEIGHTS["invariance_weight"] * float(base["invariance"]),
        "redundancy_reduction": float(base["redundancy_reduction"]),
        "joint_term": WEIGHTS["w_joint"] * joint,
        "redundancy_term": WEIGHTS["w_red"] * red_u,
        "synergy_term": -WEIGHTS["w_syn"] * syn_u,
        "supervision_term": alpha * (ce1 + ce2),
        "estimator_term": ce1 + ce2 + ce12,
    }
    terms["loss"] = sum(terms.values())
    terms.update(
        i1=i1,
        i2=i2,
        i12=i12,
        redundancy=red,
        unique1=i1 - red,
        unique2=i2 - red,
        synergy=syn,
        head_ce1=ce1,
        head_ce2=ce2,
        head_ce12=ce12,
        label_entropy=ENTROPY,
        supervision_weight=alpha,
    )
    return terms


@pytest.mark.parametrize("units", ["nats", "r2"])
def test_every_term_and_atom_matches_the_numpy_reference(units):
    """Kills any change to the atoms, the unit conversion (division by H(T), its
    floor), the signs and weights of the terms, the supervision and estimator
    terms, and an H(T) taken from the batch instead of the state."""
    z1, z2, labels = _data()
    expected = numpy_reference(z1, z2, labels, units, alpha=0.4)
    # The case is not degenerate: every atom the terms use is well above 0.
    for name in ("i1", "i2", "redundancy", "synergy"):
        assert expected[name] > 0.02, (name, expected[name])
    terms = _loss(units).terms(z1, z2, labels)
    assert set(expected) <= set(terms)
    for name, value in expected.items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=2e-4, atol=1e-6, err_msg=name)


def test_before_the_first_clustering_only_the_base_loss_and_alpha_remain():
    z1, z2, labels = _data()
    terms = _loss(ready=0.0, alpha=0.4).terms(z1, z2, labels)
    base = kps.losses.BarlowTwinsLoss().terms(z1, z2)
    expected = 0.5 * float(base["invariance"]) + float(base["redundancy_reduction"])
    np.testing.assert_allclose(float(terms["loss"]), expected, rtol=1e-5)
    for name in ("joint_term", "supervision_term", "estimator_term", "i12", "head_ce12"):
        assert float(terms[name]) == 0.0, name
    assert float(terms["supervision_weight"]) == pytest.approx(0.4)


def test_the_estimator_term_never_reaches_the_embeddings():
    """Kills heads evaluated on the live embeddings for their own cross-entropy."""
    z1, z2, labels = _data()
    loss = _loss()
    z = np.stack([z1, z2])

    def estimator_term(z):
        # + 0 * sum(z): torch refuses the gradient of a value that ignores z.
        return loss.terms(z[0], z[1], labels)["estimator_term"] + 0.0 * keras.ops.sum(z)

    grad = gradient(estimator_term, z)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(grad), 0.0)


def test_only_the_heads_own_cross_entropy_trains_a_head():
    """d(loss)/d(head1 kernel) is that of CE_1 alone, z1^T (softmax - onehot) / N:
    kills PID or supervision terms evaluated through trainable (unfrozen) heads."""
    z1, z2, labels = _data()
    loss = _loss(w_joint=5.0, w_red=5.0, w_syn=5.0, alpha=1.0)
    kernel = loss.heads.head1.kernel
    others = [v for v in loss.trainable_variables if v is not kernel]
    assert len(others) == len(loss.trainable_variables) - 1

    def total(k):
        trainable = [k if v is kernel else v.value for v in loss.trainable_variables]
        non_trainable = [v.value for v in loss.non_trainable_variables]
        return loss.stateless_call(trainable, non_trainable, z1, z2, labels)[0]

    grad = keras.ops.convert_to_numpy(gradient(total, kernel.value))
    w1 = _head_weights()[0]
    logits = z1.astype("float64") @ w1
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = z1.astype("float64").T @ (probs - np.eye(K)[labels]) / N
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_state_and_coefficients_are_non_trainable_float32_scalars():
    """Kills a state variable made trainable (the optimizer would move it)."""
    loss = _loss()
    state = [loss.state[name] for name in ("supervision_weight", "label_entropy")]
    state.append(loss.state["pseudo_labels_ready"])
    for variable in state + list(loss.coefficients.values()):
        assert not variable.trainable
        assert tuple(variable.shape) == ()
        assert keras.backend.standardize_dtype(variable.dtype) == "float32"
    trainable = {id(v) for v in loss.trainable_variables}
    heads = {id(v) for v in loss.heads.trainable_variables}
    assert trainable == heads and len(heads) == 8
    assert loss.built


def test_num_clusters_and_from_pid_loss_refuse_bad_arguments_by_name():
    assert kps.losses.PseudoLabelPIDLoss(num_clusters=2).num_clusters == 2
    with pytest.raises(ValueError, match=r"`num_clusters`.*1"):
        kps.losses.PseudoLabelPIDLoss(num_clusters=1)
    with pytest.raises(ValueError, match=r"`loss` must be a kps\.losses\.PIDLoss.*'barlow'"):
        kps.losses.PseudoLabelPIDLoss.from_pid_loss("barlow", num_clusters=3)


def test_labels_that_are_not_a_vector_are_refused_with_the_fix():
    z1, z2, labels = _data()
    with pytest.raises(
        ValueError,
        match=r"`PseudoLabelPIDLoss` expects pseudo-labels as an int vector \(batch_size,\); "
        r"received shape \(48, 1\)\. Build the batches with "
        r"kps\.data\.ssl_dataset\(\.\.\., pseudo_labels=refresh\.labels\)\.",
    ):
        _loss().terms(z1, z2, labels[:, None])


@pytest.mark.parametrize("index", range(8))
def test_no_term_but_the_estimator_reaches_any_head_weight(index):
    """d(loss - estimator_term)/d(w) = 0 for every kernel and bias of the three
    heads: kills any head evaluated unfrozen by the PID or supervision terms."""
    z1, z2, labels = _data()
    loss = _loss(w_joint=5.0, w_red=5.0, w_syn=5.0, alpha=1.0)
    weight = loss.heads.trainable_variables[index]

    def rest(w):
        mapping = [(weight, w)]
        with keras.StatelessScope(state_mapping=mapping):
            terms = loss.terms(z1, z2, labels)
        # + 0 * sum(w): torch refuses the gradient of a value that ignores w.
        return terms["loss"] - terms["estimator_term"] + 0.0 * keras.ops.sum(w)

    grad = keras.ops.convert_to_numpy(gradient(rest, weight.value))
    np.testing.assert_array_equal(grad, 0.0)
