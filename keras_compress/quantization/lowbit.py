"""4-bit weight QAT that exports through AI Edge Quantizer with the weights it was trained with.

:func:`set_weight_bits` (what ``quantize_model(model, weight_bits=4)`` calls)
gives the Conv2D / Conv1D / Dense kernels of a QAT model AEQ's 4-bit scheme:
symmetric, per output channel, scale ``max|w| / 7``, values in ``[-7, 7]``
(TF's ``FakeQuant`` with 4 bits and narrow range is exactly that grid). The
first and last weighted layers, and the ``int8_layers`` named instead, keep
8 bits, per output channel (AEQ's 8-bit scheme: ``max|w| / 127``); depthwise
kernels stay 8-bit too (AEQ has no 4-bit depthwise config).

At export, :func:`float_export` makes the QAT model trace as a float model:
activation fake-quants become the identity and each weight fake-quant the same
arithmetic written in plain ops, which TF's converter folds into a constant.
The float32 flatbuffer then holds the fake-quantized (BatchNorm-folded) weights
on AEQ's grid, and AEQ's min/max re-quantization gives back the trained
integers.

Example:
    >>> import keras
    >>> from keras_compress.quantization import quantize_model
    >>> from keras_compress.quantization.lowbit import qat_weight_bits
    >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
    ...                       keras.layers.Conv2D(4, 3, name="b"), keras.layers.Flatten(),
    ...                       keras.layers.Dense(2, name="c")])
    >>> qat_weight_bits(quantize_model(m, weight_bits=4))
    {'a': 8, 'b': 4, 'c': 8}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import keras
from keras import ops

from keras_compress.errors import QuantizationError

__all__ = ["LOWBIT_LAYER_TYPES", "exporting_float", "float_export", "is_lowbit_qat", "qat_weight_bits", "set_weight_bits"]

#: Kernel layers whose TFLite op (CONV_2D, FULLY_CONNECTED) AEQ quantizes to 4 bits.
LOWBIT_LAYER_TYPES = (keras.layers.Conv2D, keras.layers.Conv1D, keras.layers.Dense)


def _kernel_wrappers(model) -> list:
    """The QuantizeWrappers with a kernel, in graph order."""
    from keras_compress.convert.layers import walk_layers
    from keras_compress.quantization.registry import kernel_layer
    from keras_compress.quantization.wrapper import QuantizeWrapper

    return [w for w in walk_layers(model) if isinstance(w, QuantizeWrapper) and kernel_layer(w.layer) is not None]


def _lowbit_capable(wrapper) -> bool:
    from keras_compress.quantization.registry import kernel_layer

    return type(kernel_layer(wrapper.layer)) in LOWBIT_LAYER_TYPES


def set_weight_bits(model, weight_bits: int = 4, int8_layers: Sequence[str] | None = None) -> dict[str, int]:
    """Give the kernels of QAT ``model`` ``weight_bits`` (per channel), ``int8_layers`` 8 (None: first and last).

    Returns:
        ``{layer name: bits}`` of the kernel layers.

    Raises:
        QuantizationError: ``weight_bits`` not 4 or 8, or a name in ``int8_layers`` that is not a kernel layer.
    """
    from keras_compress.quantization.quantizers import LastValueQuantizer

    if weight_bits not in (4, 8):
        raise QuantizationError(f"weight_bits: expected 4 or 8 (AI Edge Quantizer's integer weights); got {weight_bits!r}")
    wrappers = _kernel_wrappers(model)
    names = [w.layer.name for w in wrappers]
    unknown = sorted(set(int8_layers or ()) - set(names))
    if unknown:
        raise QuantizationError(f"int8_layers: {unknown} are not quantized kernel layers of model {model.name!r}; "
                                f"expected some of {names}")
    keep = set(int8_layers) if int8_layers is not None else {names[0], names[-1]} if names else set()
    plan = {}
    for w in wrappers:
        bits = 8 if w.layer.name in keep or not _lowbit_capable(w) else weight_bits
        if _lowbit_capable(w):  # AEQ's scheme: per output channel, also for Dense
            w.weight_quantizer = LastValueQuantizer(num_bits=bits, per_axis=True, axis=-1)
        plan[w.layer.name] = bits
    return plan


def qat_weight_bits(model) -> dict[str, int]:
    """``{layer name: weight bits}`` of the kernel layers of a QAT model."""
    return {w.layer.name: int(getattr(w.weight_quantizer, "num_bits", 8)) for w in _kernel_wrappers(model)}


def is_lowbit_qat(model) -> bool:
    """True when some kernel of QAT ``model`` is trained below 8 bits (it exports only through AEQ)."""
    return any(b < 8 for b in qat_weight_bits(model).values())


def _baked(x, min_value, max_value, *, num_bits, narrow_range, axis, weights):
    """Export form of a fake-quant: activations pass through; weights get TF FakeQuant's arithmetic in plain ops."""
    if not weights:
        return x
    qmin, qmax = (1.0 if narrow_range else 0.0), float(2**num_bits - 1)
    lo, hi = ops.convert_to_tensor(min_value), ops.convert_to_tensor(max_value)
    if axis is not None:  # ranges per channel broadcast along the last axis
        lo, hi = ops.reshape(lo, (-1,)), ops.reshape(hi, (-1,))
    scale = (hi - lo) / (qmax - qmin)
    zero = ops.clip(ops.round(qmin - lo / scale), qmin, qmax)
    nmin, nmax = (qmin - zero) * scale, (qmax - zero) * scale
    clamped = ops.clip(x, nmin, nmax) if axis is None else ops.minimum(ops.maximum(x, nmin), nmax)
    return ops.floor((clamped - nmin) * (1.0 / scale) + 0.5) * scale + nmin


def exporting_float() -> bool:
    """True inside :func:`float_export`."""
    from keras_compress.quantization.quantizers import FAKE_QUANT_OVERRIDE

    return FAKE_QUANT_OVERRIDE.get() is not None


@contextlib.contextmanager
def float_export() -> Iterator[None]:
    """Within it, QAT models trace as float models holding their fake-quantized weights (see the module doc)."""
    from keras_compress.quantization.quantizers import FAKE_QUANT_OVERRIDE

    token = FAKE_QUANT_OVERRIDE.set(_baked)
    try:
        yield
    finally:
        FAKE_QUANT_OVERRIDE.reset(token)
