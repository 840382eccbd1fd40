"""Choose a method by name: models with the published default hyper-parameters.

Projector widths default to 2048-2048-2048, the CIFAR setting of solo-learn
for both Barlow Twins and VICReg; the ImageNet papers use 8192-8192-8192
(pass `projector_dims=(8192, 8192, 8192)`). Loss coefficients are the papers'
(Barlow Twins lambda 5e-3; VICReg 25 / 25 / 1). The PID defaults, those of
`kps.losses.PIDLoss`, are the pilot setting of docs/spec.md, section 3 (R^2
units, synergy term only, weight 1, invariance 1; `pid_ssl`'s target is the
same network on the clean view), not a tuned optimum: see README, "Results".
"""

from keras_pid_ssl.heads.projector import Projector
from keras_pid_ssl.losses.barlow_twins import BarlowTwinsLoss
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.losses.vicreg import VICRegLoss
from keras_pid_ssl.models.pid_model import PIDModel
from keras_pid_ssl.models.ssl_model import SSLModel
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_projector_dims

DEFAULT_PROJECTOR_DIMS = (2048, 2048, 2048)


def _projector(dims, output_use_bias, synchronized_bn=False):
    dims = tuple(dims)
    check_projector_dims(dims)
    return Projector(
        hidden_dims=dims[:-1],
        output_dim=dims[-1],
        output_use_bias=output_use_bias,
        synchronized_bn=synchronized_bn,
    )


def barlow_twins(
    encoder,
    projector_dims=DEFAULT_PROJECTOR_DIMS,
    synchronized_bn=False,
    augment=None,
    **loss_kwargs,
):
    """A Barlow Twins `SSLModel` (loss kwargs as in `BarlowTwinsLoss`).

    `synchronized_bn=True` builds the projector's batch norms synchronised
    over `tf.distribute` replicas (see `StrategyScope.synchronized_batch_norm`).
    `augment` (a preset name or a `kps.augment.Views`) makes the model draw
    its views on the device from `{"images"}` batches (see `SSLModel`).

    Example:

    >>> model = barlow_twins(kps.backbones.SmallConvNet(), projector_dims=(64, 32))
    >>> type(model.ssl_loss).__name__, model.ssl_loss.lambda_offdiag
    ('BarlowTwinsLoss', 0.005)
    """
    projector = _projector(projector_dims, False, synchronized_bn)
    return SSLModel(encoder, projector, BarlowTwinsLoss(**loss_kwargs), augment=augment)


def vicreg(
    encoder,
    projector_dims=DEFAULT_PROJECTOR_DIMS,
    synchronized_bn=False,
    augment=None,
    **loss_kwargs,
):
    """A VICReg `SSLModel` (loss kwargs as in `VICRegLoss`; `synchronized_bn`
    and `augment` as in `barlow_twins`).

    Example:

    >>> model = vicreg(kps.backbones.SmallConvNet(), projector_dims=(64, 32))
    >>> loss = model.ssl_loss
    >>> type(loss).__name__, loss.invariance_weight, loss.variance_weight, loss.covariance_weight
    ('VICRegLoss', 25.0, 25.0, 1.0)
    """
    projector = _projector(projector_dims, True, synchronized_bn)
    return SSLModel(encoder, projector, VICRegLoss(**loss_kwargs), augment=augment)


def pid_ssl(
    encoder,
    projector_dims=DEFAULT_PROJECTOR_DIMS,
    target_momentum=0.0,
    base_kwargs=None,
    synchronized_bn=False,
    track_gradient_ratio=True,
    augment=None,
    **loss_kwargs,
):
    """A `PIDModel` on a Barlow Twins or VICReg base (docs/spec.md, section 3 defaults).

    `loss_kwargs` go to `kps.losses.PIDLoss` unchanged (`base`, `w_syn`,
    `invariance_weight`, `units`, `estimator`, ...; its signature holds their
    defaults); `base_kwargs` to the base loss named by `base`; `augment` as
    in `barlow_twins` (with a target view). Train it with
    `kps.callbacks.PIDProtocol(epochs)` for the warm-up -> transition -> PID
    schedule, on `{"view1", "view2", "target"}` batches.

    Example:

    >>> model = pid_ssl(kps.backbones.SmallConvNet(), projector_dims=(64, 32))
    >>> type(model.ssl_loss.base).__name__, model.ssl_loss.units
    ('BarlowTwinsLoss', 'r2')
    >>> model.ssl_loss.pid_coefficients
    {'invariance_weight': 1.0, 'w_joint': 0.0, 'w_red': 0.0, 'w_syn': 1.0}
    """
    base = loss_kwargs.pop("base", "barlow_twins")
    if isinstance(base, str):
        check_choice("base", base, ("barlow_twins", "vicreg"))
        base = {"barlow_twins": BarlowTwinsLoss, "vicreg": VICRegLoss}[base](**(base_kwargs or {}))
    elif base_kwargs:
        raise ValueError(
            "`base_kwargs` configure a base loss given by name; `base` is already a loss. "
            f"Received: base={base!r}, base_kwargs={base_kwargs!r}"
        )
    return PIDModel(
        encoder,
        _projector(projector_dims, isinstance(base, VICRegLoss), synchronized_bn),
        loss=PIDLoss(base=base, **loss_kwargs),
        target_momentum=target_momentum,
        track_gradient_ratio=track_gradient_ratio,
        augment=augment,
    )


METHODS = {"barlow_twins": barlow_twins, "vicreg": vicreg, "pid": pid_ssl}


def get(method, encoder, **kwargs):
    """The model of `method` (`"barlow_twins"`, `"vicreg"` or `"pid"`).

    Example:

    >>> model = get("vicreg", kps.backbones.SmallConvNet(), projector_dims=(64, 32))
    >>> type(model).__name__, type(model.ssl_loss).__name__
    ('SSLModel', 'VICRegLoss')
    """
    check_choice("method", method, tuple(METHODS))
    return METHODS[method](encoder, **kwargs)
