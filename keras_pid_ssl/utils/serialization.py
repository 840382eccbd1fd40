"""`get_config` from the constructor: arguments read back from their attributes."""

import inspect


def stored_arguments(obj, cls, skip=(), attributes=None):
    """The constructor arguments of `cls`, read back from `obj`, for `get_config`.

    Every named parameter of `cls.__init__` (not `*args` / `**kwargs`, nor
    those in `skip`) is read from the attribute of the same name, or of the
    name `attributes` maps it to, where the constructor keeps its checked
    value (as scikit-learn's `get_params` reads an estimator's). `cls`, not
    `type(obj)`, so that a subclass's own arguments are its own to save.

    Example:

    >>> class Scaled:
    ...     def __init__(self, factor=2.0, **kwargs):
    ...         self.factor = float(factor)
    >>> stored_arguments(Scaled(3), Scaled)
    {'factor': 3.0}
    """
    attributes = attributes or {}
    return {
        name: getattr(obj, attributes.get(name, name))
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and name != "self" and name not in skip
    }
