"""`Views`: the augmentation pipelines of the two (or three) views."""

import keras
from keras import ops

from keras_pid_ssl.augment.base import in_tf_data

# Draws one layer may make per keyed call (`Views(..., step=k)`): its generator
# state's counter starts at `k * _DRAWS_PER_STEP`, so steps never share a draw.
_DRAWS_PER_STEP = 1024
# Steps wrap around after this many (the counter must fit int32 on PyTorch).
_STEP_PERIOD = 2**21


def seed_states(layer):
    """The random-generator states of `layer` and of every layer nested in it.

    Each is the `state` variable of a `keras.random.SeedGenerator`: a
    non-trainable integer vector `(seed, counter)` whose counter every draw
    advances. Keras tracks them as the layer's non-trainable variables.
    """
    return [
        variable
        for variable in layer.non_trainable_variables
        if "int" in str(variable.dtype) and tuple(variable.shape) == (2,)
    ]


def key_seed_states(layer, step):
    """Keys every random generator of `layer` on `step` (stateless draws).

    Sets each generator state `(seed, counter)` to `(seed, step * 1024)`, so
    the next call of `layer` draws what `(its seeds, step)` decide, whatever
    was drawn before: a run that restarts at step `k` draws what an
    uninterrupted run draws there. Works inside compiled steps (`step` may be
    a tensor) on every backend.

    Args:
        layer: a Keras layer (e.g. a `Views`).
        step: a non-negative integer (or integer tensor).
    """
    for state in seed_states(layer):
        counter = ops.mod(ops.cast(step, "int32"), _STEP_PERIOD) * _DRAWS_PER_STEP
        value = ops.convert_to_tensor(state.value)
        state.assign(ops.stack([value[0], ops.cast(counter, value.dtype)]))


def build_view(layer, input_shape):
    """Builds a view step by step, propagating the image shape.

    A `keras.layers.Pipeline` has no `build`, so on its first call Keras traces
    it symbolically to build its steps: seconds of graph building for a preset,
    once per pipeline and again inside each `tf.data` map. Preprocessing layers
    know their output shape, so building them in turn costs nothing. A step
    whose output shape is unknown is left to build itself on its first call.
    """
    if layer.built or input_shape is None:
        return
    if not isinstance(layer, keras.layers.Pipeline):
        if type(layer).build is not keras.layers.Layer.build:
            layer.build(input_shape)
        return
    shape = input_shape
    for step in layer.layers:
        build_view(step, shape)
        try:
            shape = step.compute_output_shape(shape)
        except NotImplementedError:
            return
    layer.built = True


def _steps(layer):
    """The layer and every step nested in it (Pipelines, Views, RandomApply)."""
    yield layer
    children = []
    if isinstance(layer, keras.layers.Pipeline):
        children = layer.layers
    elif isinstance(layer, Views):
        children = layer._layers_of_views()
    elif hasattr(layer, "layer") and isinstance(layer.layer, keras.layers.Layer):
        children = [layer.layer]
    for child in children:
        yield from _steps(child)


def check_tf_data_safe(layer, name="augment"):
    """Refuses a `keras.Model` (e.g. `keras.Sequential`) step on a non-TensorFlow
    backend, where it converts the `tf.data` tensors to the backend's and fails
    with a `NotImplementedError` deep inside `tf.data`."""
    if keras.backend.backend() == "tensorflow":
        return
    for step in _steps(layer):
        if isinstance(step, keras.Model):
            raise ValueError(
                f"`{name}` contains the Keras model {step.name!r} "
                f"({type(step).__name__}), which cannot run inside tf.data under the "
                f"{keras.backend.backend()} backend. Put the augmentation layers in a "
                "keras.layers.Pipeline([...]) instead of keras.Sequential([...])."
            )


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class Views(keras.layers.Layer):
    """Maps a batch of images to its views: `(view1, view2)` or `(view1, view2, target)`.

    Each view is its own layer (usually a `keras.layers.Pipeline`), so the two
    views can follow different recipes (BYOL's asymmetric blur and
    solarization) and always draw independent random parameters. `target` is
    the PID model's target view (section 1 of the PID spec): the clean image
    resized, or a flip of it.

    Like `keras.layers.Pipeline`, this layer does not convert its inputs to
    the backend's tensors, so it can run inside `tf.data` on every backend
    when its views can (Keras preprocessing layers, `Pipeline`s of them and
    this package's augmentation layers can; `keras.Sequential` cannot under
    JAX). It also runs on the accelerator inside a model's train step:
    `kps.SSLModel(..., augment=views)` draws the views there.

    Called with `step=k`, the views are keyed on `(the layers' seeds, k)`
    (`key_seed_states`): the same `k` gives the same views, however often
    the layer was called before. Without `step`, each call advances the
    layers' generators as usual.

    Args:
        view1: layer producing the first view.
        view2: layer producing the second view.
        target: optional layer producing the target view.
        **kwargs: base layer arguments (`name`).

    Example:

    >>> views = kps.augment.preset("cifar", seed=0)   # a Views
    >>> images = np.random.rand(4, 32, 32, 3).astype("float32")
    >>> view1, view2, target = views(images, step=3)
    >>> again, _, _ = views(images, step=3)
    >>> bool(np.allclose(view1, again)), bool(np.allclose(view1, view2))
    (True, False)
    """

    def __init__(self, view1, view2, target=None, **kwargs):
        super().__init__(**kwargs)
        for name, layer in (("view1", view1), ("view2", view2), ("target", target)):
            if layer is None and name == "target":
                continue
            if not isinstance(layer, keras.layers.Layer):
                raise ValueError(
                    f"`{name}` must be a Keras layer (e.g. a keras.layers.Pipeline). "
                    f"Received: {name}={layer!r}"
                )
        self.view1 = view1
        self.view2 = view2
        self.target = target

    def __call__(self, images, *args, **kwargs):
        if in_tf_data(images):
            # In tf.data under JAX or PyTorch: the TensorFlow tensors go to
            # the views as they are, not converted to the backend's tensors.
            if not self.built:
                self.build(tuple(images.shape))
            return self.call(images, *args, **kwargs)
        return super().__call__(images, *args, **kwargs)

    def _layers_of_views(self):
        return [self.view1, self.view2] + ([self.target] if self.target is not None else [])

    def build(self, input_shape):
        # `input_shape` is None for NumPy inputs (not converted): then `call`
        # builds the views from the images it receives.
        if input_shape is not None:
            for layer in self._layers_of_views():
                build_view(layer, tuple(input_shape))
        self.built = True

    @property
    def num_views(self):
        return 2 if self.target is None else 3

    def call(self, images, training=True, step=None):
        if step is not None:
            key_seed_states(self, step)
        outputs = []
        for layer in self._layers_of_views():
            build_view(layer, tuple(images.shape))
            outputs.append(layer(images, training=training))
        return tuple(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(layer.compute_output_shape(input_shape) for layer in self._layers_of_views())

    def get_config(self):
        config = super().get_config()
        config.update(
            view1=keras.saving.serialize_keras_object(self.view1),
            view2=keras.saving.serialize_keras_object(self.view2),
            target=None
            if self.target is None
            else keras.saving.serialize_keras_object(self.target),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("view1", "view2", "target"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
