"""pytest plugin for mutation runs only (tools/mutation.sh): Keras meets mutmut.

Loaded with `-p tools.mutmut_keras` from `[tool.mutmut] pytest_add_cli_args`
(mutmut copies this file into ./mutants); never part of a normal test run.

1. mutmut 3 replaces every mutated function by a trampoline
   `def f(*args, **kwargs)` decorated with `functools.wraps`.
   `inspect.signature` follows the `__wrapped__` that `wraps` sets, but
   `inspect.getfullargspec` does not, and Keras reads a layer's `__init__`
   through it (`Operation.__new__`, `Model.__new__`): with `args == []` it
   raises IndexError before any test runs. Here `getfullargspec` looks through
   mutmut's trampolines (and nothing else), so layers whose `__init__` is
   mutated build as they do unmutated.
2. mutmut runs, per mutant, the tests that executed the mutated function,
   with `-x`, in the order it lists them (a set's). Running the fastest first
   (durations from mutmut's own stats) lets a killed mutant stop after the
   cheap unit tests instead of after a `fit`.
3. TensorFlow (tf.data pipelines in the test helpers) is imported once, in the
   process mutmut forks its workers from, instead of once per mutant.
"""

import contextlib
import inspect
import json
import os

_getfullargspec = inspect.getfullargspec


def _is_mutmut_trampoline(function):
    code = getattr(function, "__code__", None)
    return (
        code is not None
        and code.co_name == "_trampoline_wrapper"
        and hasattr(function, "__wrapped__")
    )


def getfullargspec(function):
    while _is_mutmut_trampoline(function):
        function = function.__wrapped__
    return _getfullargspec(function)


inspect.getfullargspec = getfullargspec

with contextlib.suppress(ImportError):
    import tensorflow  # noqa: F401


def _durations():
    try:
        with open("mutmut-stats.json") as f:  # pytest runs inside ./mutants
            return json.load(f).get("duration_by_test", {})
    except (OSError, ValueError):
        return {}


def pytest_collection_modifyitems(session, config, items):
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "fail", "list_all_tests"):
        return
    durations = _durations()
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
