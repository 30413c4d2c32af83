"""Per-layer 4/8-bit weights under a byte budget: :func:`mixed_precision_plan`.

The plan is one more per-layer knob (``{layer: 4 or 8}``); the model's weights
go through AI Edge Quantizer as ``to_tflite(..., quantization="int4_weights",
int8_layers=plan.int8_layers)`` does. How it is chosen, on ``data``:

1. the criterion is smooth, so two plans rarely tie: the output error against
   the float32 flatbuffer, ``mean KL(softmax(float) || softmax(quantized))``
   for class scores (logits or probabilities), else the noise-to-signal
   power ratio (``10 ** (-SQNR / 10)``). Top-1 accuracy is a step function:
   on data where every plan scores 100% it cannot tell them apart;
2. from every layer at 4 bits (the smallest file), each layer alone is raised
   to 8 bits and measured: its gain (how much the error drops) and its cost
   (how many bytes the file grows);
3. layers are raised to 8 bits in order of gain per byte, each one only if
   the file, measured after the step, stays within ``budget_bytes`` (a layer
   that does not fit is skipped and the next tried); the single upgrade with
   the largest gain that fits replaces that plan when its error is lower (the
   knapsack's greedy guard: gain per byte alone can miss one large layer);
4. safeguard: the plan is measured against all-4-bit on ``data``; unless its
   error is lower and (with labels) its accuracy no lower, the all-4-bit plan
   is returned.

Give ``data`` that is neither the test set nor (ideally) the training set: a
held-out validation split. The bench (``bench/bench_int4.py``) trains the demo
CNN on 80% of the digits training images and plans on the other 20%.

Example:
    >>> from keras_compress.quantization.mixed import MixedPrecisionPlan, output_error
    >>> p = MixedPrecisionPlan(bits={"stem": 8, "body": 4, "head": 8}, size_bytes=1000, budget_bytes=1200,
    ...                        error=0.01, all4_error=0.02, accuracy=None, all4_accuracy=None)
    >>> p.int8_layers
    ('stem', 'head')
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    >>> output_error(logits, logits), output_error(logits, logits[::-1]) > 1.0
    (0.0, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_compress.errors import QuantizationError

__all__ = ["MixedPrecisionPlan", "mixed_precision_plan", "output_error"]


@dataclasses.dataclass(frozen=True)
class MixedPrecisionPlan:
    """Weight bits per Keras layer, the file size they give, and the measurements that chose them.

    ``error`` / ``all4_error``: :func:`output_error` on ``data`` of the plan and
    of every layer at 4 bits. ``accuracy`` / ``all4_accuracy``: top-1 on
    ``data`` when labels were given, else ``None``. ``gain`` / ``cost_bytes``:
    per layer, how much the error drops and the file grows when that layer
    alone goes from 4 to 8 bits (the greedy order is ``gain / cost_bytes``).
    """

    bits: dict[str, int]
    size_bytes: int
    budget_bytes: int
    error: float
    all4_error: float
    accuracy: float | None
    all4_accuracy: float | None
    gain: dict[str, float] = dataclasses.field(default_factory=dict)
    cost_bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    tflite: bytes = dataclasses.field(default=b"", repr=False)

    @property
    def int8_layers(self) -> tuple[str, ...]:
        """The layers at 8 bits, for ``to_tflite(..., int8_layers=...)``."""
        return tuple(n for n, b in self.bits.items() if b == 8)

    @property
    def fell_back(self) -> bool:
        """True when no layer is at 8 bits beyond what AEQ forces (the safeguard kept all-4-bit, or nothing fit)."""
        return not any(self.gain.get(n) is not None and b == 8 for n, b in self.bits.items())


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities: ``scores`` as they are when rows already are distributions, else their softmax."""
    if np.all(scores >= 0) and np.allclose(scores.sum(-1), 1.0, atol=1e-3):
        return np.clip(scores, 1e-12, 1.0)
    z = np.exp(scores - scores.max(-1, keepdims=True))
    return np.clip(z / z.sum(-1, keepdims=True), 1e-12, 1.0)


def output_error(reference: np.ndarray, test: np.ndarray) -> float:
    """How far ``test`` outputs are from ``reference`` (float) outputs; 0 when equal, lower is better.

    Class scores (``(N, C)`` with ``C > 1``): mean KL divergence (nats) of the
    test distribution from the reference one, softmax applied to logits.
    Anything else: noise-to-signal power ratio, ``10 ** (-SQNR / 10)``.
    """
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    out = np.asarray(test, np.float64).reshape(len(test), -1)
    if ref.shape[-1] > 1:
        p, q = _probabilities(ref), _probabilities(out)
        return max(0.0, float(np.mean(np.sum(p * (np.log(p) - np.log(q)), -1))))
    signal = float(np.sum(ref**2))
    return float(np.sum((ref - out) ** 2)) / signal if signal > 0 else float(np.sum((ref - out) ** 2))


def _outputs(blob: bytes, x: np.ndarray) -> np.ndarray:
    import edgetpu

    out = edgetpu.run(edgetpu.make_interpreter(blob), x)
    return np.asarray(out[0] if isinstance(out, list) else out, dtype=np.float32)


def _accuracy(out: np.ndarray, y: np.ndarray | None) -> float | None:
    if y is None:
        return None
    return float(np.mean(out.reshape(len(out), -1).argmax(-1) == np.asarray(y).reshape(-1)))


def _split(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0], np.float32), np.asarray(data[1])
    return np.asarray(data, np.float32), None


def _upgrades(float_blob: bytes, model, used: dict[str, int], base: tuple[int, float], x: np.ndarray,
              ref: np.ndarray) -> tuple[dict[str, float], dict[str, int], dict[str, tuple[bytes, dict[str, int]]]]:
    """Per 4-bit layer: error drop, file growth and the file itself when it alone goes to 8 bits (the others at 4)."""
    from keras_compress.convert.lowbit import aeq_quantize

    size, err = base
    gain, cost, files = {}, {}, {}
    for name in (n for n, b in used.items() if b == 4):
        files[name] = aeq_quantize(float_blob, model, {**used, name: 8})
        gain[name] = err - output_error(ref, _outputs(files[name][0], x))
        cost[name] = max(1, len(files[name][0]) - size)
    return gain, cost, files


def _greedy(float_blob: bytes, model, used: dict[str, int], gain: dict[str, float], cost: dict[str, int],
            budget: int, first: tuple[bytes, dict[str, int]]) -> tuple[bytes, dict[str, int]]:
    """Raise layers to 8 bits by gain per byte, each kept only if the measured file stays within ``budget``."""
    from keras_compress.convert.lowbit import aeq_quantize

    blob, bits = first
    for name in sorted((n for n in gain if gain[n] > 0), key=lambda n: gain[n] / cost[n], reverse=True):
        cand, cand_used = aeq_quantize(float_blob, model, {**bits, name: 8})
        if len(cand) <= budget:
            blob, bits = cand, cand_used
    return blob, bits


def mixed_precision_plan(model, data: Any, *, budget_bytes: int, max_samples: int = 500) -> MixedPrecisionPlan:
    """Choose 4 or 8 weight bits per layer so the ``int4_weights`` file fits ``budget_bytes``.

    Args:
        model: a float Keras model (built).
        data: ``x`` or ``(x, y)``, held out from training and testing (the plan
            is chosen on it); the first ``max_samples`` samples are used.
            Labels add the safeguard that the plan is not less accurate than
            all-4-bit on ``data``.
        budget_bytes: the largest file allowed, in bytes (as written by ``to_tflite``).

    Returns:
        The plan (its ``tflite`` field holds the file it measured).

    Raises:
        QuantizationError: the budget is below the all-4-bit file's size.
    """
    from keras_compress.convert import to_tflite
    from keras_compress.convert.lowbit import aeq_quantize, weighted_ops

    x, y = _split(data)
    x, y = x[:max_samples], None if y is None else y[:max_samples]
    float_blob = to_tflite(model, quantization="float32", verbose=False)
    layers = list(dict.fromkeys(w.layer for w in weighted_ops(float_blob, model)))
    all4, used = aeq_quantize(float_blob, model, dict.fromkeys(layers, 4))
    if len(all4) > budget_bytes:
        raise QuantizationError(f"model {model.name!r}: budget_bytes={budget_bytes} is below the all-4-bit file "
                                f"({len(all4)} bytes); nothing fits")
    ref, all4_out = _outputs(float_blob, x), _outputs(all4, x)
    all4_error = output_error(ref, all4_out)
    gain, cost, files = _upgrades(float_blob, model, used, (len(all4), all4_error), x, ref)
    blob, bits = _greedy(float_blob, model, used, gain, cost, budget_bytes, (all4, dict(used)))
    out = _outputs(blob, x)
    error = output_error(ref, out)
    fits = [n for n in gain if len(files[n][0]) <= budget_bytes]
    best = max(fits, key=lambda n: gain[n], default=None)  # greedy by ratio can miss one large, useful layer
    if best is not None and all4_error - gain[best] < error:
        (blob, bits), error = files[best], all4_error - gain[best]
        out = _outputs(blob, x)
    accuracy, all4_accuracy = _accuracy(out, y), _accuracy(all4_out, y)
    if blob is not all4 and (error >= all4_error or (y is not None and accuracy < all4_accuracy)):
        bits, blob, error, accuracy = dict(used), all4, all4_error, all4_accuracy  # safeguard: not better on data
    return MixedPrecisionPlan(bits, len(blob), int(budget_bytes), error, all4_error, accuracy, all4_accuracy,
                              gain, cost, blob)
