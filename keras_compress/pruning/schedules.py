"""Pruning schedules: when to update the masks and to which sparsity.

Same parameters and semantics as tfmot's ``pruning_schedule.py``, so moving
over is a change of import. A schedule is called with the training step and
returns ``(should_prune, sparsity)``. With a Python ``int`` step it returns
Python values (this is what :class:`UpdatePruningStep` uses, so no TensorFlow
op runs on the steps where nothing is pruned); with a tensor step it returns
tensors (computed with ``keras.ops``).

Example:
    >>> from keras_compress.pruning import PolynomialDecay
    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000)
    >>> should_prune, sparsity = schedule(500)
    >>> should_prune, round(sparsity, 3)
    (True, 0.7)
    >>> schedule(1000)
    (True, 0.8)
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

from keras_compress.errors import PruningError

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule", "get"]

_PACKAGE = "keras_compress.pruning"


def _is_python_int(step) -> bool:
    return isinstance(step, numbers.Integral) and not isinstance(step, bool)


def _check_int(name: str, value, minimum: int | None = None) -> None:
    if not _is_python_int(value):
        raise PruningError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise PruningError(f"{name} must be >= {minimum}, got {value!r}")


def _check_sparsity(name: str, value) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise PruningError(f"{name} must be a float in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise PruningError(f"{name} must be in [0, 1), got {value!r}")


class PruningSchedule:
    """Base class: says at each step whether to prune and to which sparsity.

    Subclasses implement ``sparsity(step)`` (or ``__call__(step) ->
    (should_prune, sparsity)``) and ``get_config()`` (tfmot's
    ``{"class_name", "config"}`` layout, or the built-in schedules' way:
    ``_arguments()`` returning the constructor's arguments).
    """

    begin_step: int
    end_step: int
    frequency: int

    def _validate_steps(self, allow_negative_1: bool) -> None:
        _check_int("begin_step", self.begin_step, 0)
        _check_int("frequency", self.frequency, 1)
        _check_int("end_step", self.end_step)
        if self.end_step == -1:
            if not allow_negative_1:
                raise PruningError(
                    f"end_step must be >= begin_step ({self.begin_step}) for "
                    f"{type(self).__name__}, got -1 (prune forever is only for ConstantSparsity)"
                )
        elif self.end_step < self.begin_step:
            raise PruningError(
                f"end_step must be -1 or >= begin_step ({self.begin_step}), got {self.end_step}"
            )

    def should_prune(self, step):
        """True when ``step`` is in [begin_step, end_step] and on a frequency boundary."""
        if _is_python_int(step):
            in_range = step >= self.begin_step and (self.end_step < 0 or step <= self.end_step)
            return in_range and (step - self.begin_step) % self.frequency == 0
        step = ops.cast(step, "int64")
        in_range = ops.logical_and(
            ops.greater_equal(step, self.begin_step),
            ops.logical_or(ops.less_equal(step, self.end_step), self.end_step < 0),
        )
        turn = ops.equal(ops.mod(step - self.begin_step, self.frequency), 0)
        return ops.logical_and(in_range, turn)

    def sparsity(self, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, step):
        """Returns ``(should_prune, sparsity)`` for the training ``step``."""
        return self.should_prune(step), self.sparsity(step)

    def _arguments(self) -> dict:
        """The constructor's arguments (``cls(**self._arguments())`` rebuilds the schedule)."""
        if type(self).get_config is PruningSchedule.get_config:
            raise NotImplementedError(f"{type(self).__name__} must implement get_config()")
        config = self.get_config()
        return dict(config["config"] if "class_name" in config and "config" in config else config)

    def get_config(self) -> dict:
        """``{"class_name": ..., "config": {arguments}}``, tfmot's layout.

        ``keras.saving.deserialize_keras_object(schedule.get_config(),
        custom_objects={...})`` returns the schedule, as in tfmot.
        """
        return {"class_name": type(self).__name__, "config": self._arguments()}

    @classmethod
    def from_config(cls, config: dict) -> PruningSchedule:
        # Accepts tfmot's nested layout and the flat arguments of older saves.
        if "class_name" in config and "config" in config:
            config = config["config"]
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._arguments() == other._arguments()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._arguments().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantSparsity(PruningSchedule):
    """Prune to a constant sparsity every ``frequency`` steps in [begin_step, end_step].

    Args:
        target_sparsity: Fraction of weights set to zero, in [0, 1).
        begin_step: First step at which the masks are updated.
        end_step: Last step at which they are updated; -1 (default) prunes
            until training ends.
        frequency: Update the masks every ``frequency`` steps.

    Example:
        >>> s = ConstantSparsity(0.5, begin_step=0, frequency=100)
        >>> s(100), s(150)
        ((True, 0.5), (False, 0.5))
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        _check_sparsity("target_sparsity", target_sparsity)
        self.target_sparsity = float(target_sparsity)
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self._validate_steps(allow_negative_1=True)

    def sparsity(self, step):
        if _is_python_int(step):
            return self.target_sparsity
        return ops.convert_to_tensor(self.target_sparsity, dtype="float32")

    def _arguments(self) -> dict:
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from ``initial_sparsity`` to ``final_sparsity`` along a polynomial.

    ``sparsity(step) = final + (initial - final) * (1 - p) ** power`` with
    ``p = clip((step - begin_step) / (end_step - begin_step), 0, 1)``: pruning
    is fast at first and slows down near the target (Zhu & Gupta, 2017).

    Args:
        initial_sparsity: Sparsity at ``begin_step``, in [0, 1).
        final_sparsity: Sparsity from ``end_step`` on, in [0, 1).
        begin_step: First step at which the masks are updated.
        end_step: Last step at which they are updated (not -1).
        power: Exponent of the decay (3 as in tfmot).
        frequency: Update the masks every ``frequency`` steps.

    Example:
        >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
        >>> round(s(50)[1], 3)
        0.7
    """

    def __init__(
        self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100
    ):
        _check_sparsity("initial_sparsity", initial_sparsity)
        _check_sparsity("final_sparsity", final_sparsity)
        if not isinstance(power, numbers.Real) or isinstance(power, bool) or power <= 0:
            raise PruningError(f"power must be a number > 0, got {power!r}")
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.power = power
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self._validate_steps(allow_negative_1=False)

    def sparsity(self, step):
        span = max(self.end_step - self.begin_step, 1)
        if _is_python_int(step):
            p = min(1.0, max(0.0, (step - self.begin_step) / span))
            return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (
                1.0 - p
            ) ** self.power
        p = ops.clip(ops.cast(step - self.begin_step, "float32") / float(span), 0.0, 1.0)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * ops.power(
            1.0 - p, float(self.power)
        )

    def _arguments(self) -> dict:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "power": self.power,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


_BY_NAME = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}


def get(identifier) -> PruningSchedule:
    """Returns a schedule from a schedule object, a config dict or a serialized dict.

    Example:
        >>> get({"class_name": "ConstantSparsity",
        ...      "config": {"target_sparsity": 0.5, "begin_step": 0}})
        ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, frequency=100)
    """
    if isinstance(identifier, PruningSchedule):
        return identifier
    if isinstance(identifier, dict):
        if identifier.get("class_name") in _BY_NAME and "module" not in identifier:
            return _BY_NAME[identifier["class_name"]].from_config(identifier["config"])
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, PruningSchedule):
            return obj
    raise PruningError(
        f"pruning_schedule must be a PruningSchedule (ConstantSparsity, PolynomialDecay) "
        f"or its config, got {identifier!r}"
    )
