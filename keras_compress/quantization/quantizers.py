"""Fake-quant quantizers following TFLite's int8 scheme.

Every quantizer simulates int8 with ``keras.quantizers.fake_quant_with_min_max_vars``,
which on the TensorFlow backend emits TensorFlow's ``FakeQuantWithMinMaxVars``
(``...PerChannel``) op: the op the TFLite converter reads its quantization
parameters from, so a trained model converts to full int8 with no
representative data.

- :class:`LastValueQuantizer`: weights. Symmetric, narrow range ``[-127, 127]``,
  range ``max(|w|)`` of the current weights (per tensor or per output channel).
- :class:`MovingAverageQuantizer`: activations. Asymmetric ``[-128, 127]``,
  range learned as a moving average of each training batch's min and max
  (started from the first batch's range rather than tfmot's fixed ``[-6, 6]``,
  so short fine-tuning runs get usable ranges).
- :class:`FixedRangeQuantizer`: outputs whose int8 range TFLite fixes
  (softmax / sigmoid: scale 1/256, zero point -128; tanh: scale 1/128).

A quantizer is a small serializable object (``get_config`` / ``from_config``);
:func:`get` accepts a name, a config dict or a quantizer.

Example:
    >>> import numpy as np
    >>> from keras_compress.quantization.quantizers import LastValueQuantizer
    >>> q = LastValueQuantizer(per_axis=True, axis=-1)
    >>> w = np.array([[0.3, -2.0], [1.0, 0.1]], dtype="float32")
    >>> [[round(float(v), 3) for v in row] for row in np.asarray(q(w, training=False, weights={}))]
    [[0.299, -2.0], [1.0, 0.094]]
"""

from __future__ import annotations

import contextvars
from typing import ClassVar

import keras
from keras import ops

from keras_compress.errors import QuantizationError

__all__ = [
    "FixedRangeQuantizer",
    "LastValueQuantizer",
    "MovingAverageQuantizer",
    "Quantizer",
    "fake_quant",
    "get",
]

_PACKAGE = "keras_compress.quantization"

# Smallest range a weight channel may have: an all-zero (pruned) channel would
# otherwise give a zero scale and NaNs.
_MIN_WEIGHT_RANGE = 1e-6


#: While set (by :func:`keras_compress.quantization.lowbit.float_export`), every fake-quant call goes through it.
FAKE_QUANT_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("kc_fake_quant_override", default=None)


def fake_quant(x, min_value, max_value, *, num_bits=8, narrow_range=False, axis=None, weights=False):
    """Simulated quantization with TFLite rounding (a thin wrapper of Keras's op)."""
    override = FAKE_QUANT_OVERRIDE.get()
    if override is not None:
        return override(x, min_value, max_value, num_bits=num_bits, narrow_range=narrow_range, axis=axis, weights=weights)
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, min_value, max_value, num_bits=num_bits, narrow_range=narrow_range, axis=axis
    )


class Quantizer:
    """Base class: ``build`` creates the state a quantizer needs, ``__call__`` applies it.

    Same interface as tfmot's ``quantizers.Quantizer``: ``build(tensor_shape,
    name, layer) -> dict of variables`` and ``__call__(inputs, training,
    weights)``.
    """

    def build(self, tensor_shape, name, layer) -> dict:
        return {}

    def __call__(self, inputs, training, weights, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_bits(num_bits):
    if not isinstance(num_bits, int) or isinstance(num_bits, bool) or not 2 <= num_bits <= 16:
        raise QuantizationError(f"num_bits must be an int in [2, 16], got {num_bits!r}")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LastValueQuantizer(Quantizer):
    """Weight quantizer: symmetric range from the weights' current ``max(|w|)``.

    Args:
        num_bits: bit width (8 for int8).
        per_axis: one range per slice along ``axis`` (per output channel).
        axis: the channel axis when ``per_axis``.
        narrow_range: use ``[-127, 127]`` (TFLite's int8 weight scheme).
        symmetric: ``[-max|w|, max|w|]`` (TFLite's); False: ``[min(w), max(w)]``
            widened to contain 0 (tfmot's option).

    Example:
        >>> import numpy as np
        >>> q = LastValueQuantizer()
        >>> float(np.asarray(q(np.array([1.0, -0.3], "float32"), False, {}))[0])
        1.0
    """

    def __init__(self, num_bits=8, per_axis=False, axis=-1, narrow_range=True, symmetric=True):
        _check_bits(num_bits)
        self.num_bits = num_bits
        self.per_axis = bool(per_axis)
        self.axis = int(axis)
        self.narrow_range = bool(narrow_range)
        self.symmetric = bool(symmetric)

    def __call__(self, inputs, training, weights, **kwargs):
        x = ops.convert_to_tensor(inputs)
        if self.per_axis:
            axis = self.axis % len(x.shape)
            reduce = [i for i in range(len(x.shape)) if i != axis]
        else:
            axis, reduce = None, None
        if self.symmetric:
            hi = ops.maximum(ops.max(ops.abs(x), axis=reduce), _MIN_WEIGHT_RANGE)
            lo = -hi
        else:  # the weights' own [min, max], widened to contain 0
            lo = ops.minimum(ops.min(x, axis=reduce), 0.0)
            hi = ops.maximum(ops.max(x, axis=reduce), lo + _MIN_WEIGHT_RANGE)
        # The range is not trained: no gradient through it (straight-through for w only).
        lo, hi = ops.stop_gradient(lo), ops.stop_gradient(hi)
        return fake_quant(x, lo, hi, num_bits=self.num_bits, narrow_range=self.narrow_range, axis=axis, weights=True)

    def get_config(self):
        return {
            "num_bits": self.num_bits,
            "per_axis": self.per_axis,
            "axis": self.axis,
            "narrow_range": self.narrow_range,
            "symmetric": self.symmetric,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MovingAverageQuantizer(Quantizer):
    """Activation quantizer: asymmetric per-tensor range learned during training.

    In training, each batch's min and max update ``min``/``max`` variables by
    an exponential moving average (the first batch sets them); in inference the
    stored range is used. The range always contains 0, as TFLite requires.

    Args:
        num_bits: bit width (8 for int8).
        ema_decay: moving-average decay per training step.
        narrow_range: ``False`` for TFLite activations (``[-128, 127]``).
        init_min, init_max: the range before any training batch.
        per_axis: tfmot's argument; only False (per tensor) is supported.
        symmetric: a range symmetric around 0 (tfmot's option; TFLite's activations are not).

    Example:
        >>> import numpy as np
        >>> q = MovingAverageQuantizer()
        >>> q.init_min, q.init_max
        (-6.0, 6.0)
    """

    def __init__(
        self, num_bits=8, ema_decay=0.99, narrow_range=False, init_min=-6.0, init_max=6.0, per_axis=False, symmetric=False
    ):
        _check_bits(num_bits)
        if per_axis:
            raise QuantizationError("MovingAverageQuantizer: per_axis=True is not supported (TFLite's activations are per tensor)")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise QuantizationError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if not float(init_min) <= 0.0 <= float(init_max):
            raise QuantizationError(f"init_min <= 0 <= init_max needed, got [{init_min!r}, {init_max!r}]")
        self.num_bits = num_bits
        self.ema_decay = float(ema_decay)
        self.narrow_range = bool(narrow_range)
        self.init_min = float(init_min)
        self.init_max = float(init_max)
        self.symmetric = bool(symmetric)

    def build(self, tensor_shape, name, layer):
        min_var = layer.add_weight(
            name=f"{name}_min", shape=(), initializer=keras.initializers.Constant(self.init_min), trainable=False
        )
        max_var = layer.add_weight(
            name=f"{name}_max", shape=(), initializer=keras.initializers.Constant(self.init_max), trainable=False
        )
        seen = layer.add_weight(name=f"{name}_seen", shape=(), initializer="zeros", trainable=False)
        return {"min": min_var, "max": max_var, "seen": seen}

    def __call__(self, inputs, training, weights, **kwargs):
        x = ops.convert_to_tensor(inputs)
        min_var, max_var = weights["min"], weights["max"]
        if training:
            seen = weights["seen"]
            batch_min = ops.cast(ops.min(x), min_var.dtype)
            batch_max = ops.cast(ops.max(x), max_var.dtype)
            d = self.ema_decay
            new_min = ops.where(seen > 0, min_var * d + batch_min * (1.0 - d), batch_min)
            new_max = ops.where(seen > 0, max_var * d + batch_max * (1.0 - d), batch_max)
            min_var.assign(new_min)
            max_var.assign(new_max)
            seen.assign(ops.ones_like(seen))
            lo, hi = ops.stop_gradient(new_min), ops.stop_gradient(new_max)
        else:
            lo, hi = ops.convert_to_tensor(min_var), ops.convert_to_tensor(max_var)
        lo = ops.minimum(lo, 0.0)
        hi = ops.maximum(ops.maximum(hi, 0.0), lo + 1e-6)
        if self.symmetric:
            hi = ops.maximum(hi, -lo)
            lo = -hi
        return fake_quant(x, lo, hi, num_bits=self.num_bits, narrow_range=self.narrow_range)

    def get_config(self):
        return {
            "num_bits": self.num_bits,
            "ema_decay": self.ema_decay,
            "narrow_range": self.narrow_range,
            "init_min": self.init_min,
            "init_max": self.init_max,
            "symmetric": self.symmetric,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FixedRangeQuantizer(Quantizer):
    """Quantizer with a constant range, for outputs whose TFLite int8 range is fixed.

    Example:
        >>> q = FixedRangeQuantizer.for_activation("softmax")
        >>> round(q.max_value * 256)
        255
    """

    # TFLite int8 kernels: LOGISTIC / SOFTMAX output scale 1/256, zero point -128;
    # TANH output scale 1/128, zero point 0.
    _FIXED: ClassVar[dict] = {
        "softmax": (0.0, 255.0 / 256.0),
        "sigmoid": (0.0, 255.0 / 256.0),
        "tanh": (-1.0, 127.0 / 128.0),
    }

    def __init__(self, min_value, max_value, num_bits=8, narrow_range=False):
        _check_bits(num_bits)
        if not float(min_value) <= 0.0 <= float(max_value) or float(min_value) == float(max_value):
            raise QuantizationError(f"min_value <= 0 <= max_value with min < max needed, got [{min_value!r}, {max_value!r}]")
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self.num_bits = num_bits
        self.narrow_range = bool(narrow_range)

    @classmethod
    def for_activation(cls, name: str) -> FixedRangeQuantizer | None:
        """The quantizer TFLite implies for activation ``name``, or None if it has no fixed range."""
        rng = cls._FIXED.get(name)
        return None if rng is None else cls(*rng)

    def __call__(self, inputs, training, weights, **kwargs):
        return fake_quant(inputs, self.min_value, self.max_value, num_bits=self.num_bits, narrow_range=self.narrow_range)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "num_bits": self.num_bits, "narrow_range": self.narrow_range}


_BY_NAME = {
    "last_value": LastValueQuantizer,
    "moving_average": MovingAverageQuantizer,
    "fixed_range": FixedRangeQuantizer,
}


def get(identifier) -> Quantizer | None:
    """A quantizer from a name (``"last_value"``, ``"moving_average"``), a config or a quantizer.

    Example:
        >>> get("moving_average")
        MovingAverageQuantizer(num_bits=8, ema_decay=0.99, narrow_range=False, init_min=-6.0, init_max=6.0, symmetric=False)
    """
    if identifier is None or isinstance(identifier, Quantizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise QuantizationError(f"unknown quantizer {identifier!r}: expected one of {', '.join(_BY_NAME)}")
        return cls()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(obj, Quantizer):
            raise QuantizationError(f"config does not describe a Quantizer: {identifier!r}")
        return obj
    raise QuantizationError(f"expected a Quantizer, its name or its config, got {type(identifier).__name__}")


def serialize(quantizer) -> dict | None:
    return None if quantizer is None else keras.saving.serialize_keras_object(quantizer)
