"""Per-layer 4/8-bit weights under a byte budget: :func:`mixed_precision_plan`.

The plan is one more per-layer knob (``{layer: 4 or 8}``); the model's weights
go through AI Edge Quantizer as ``to_tflite(..., quantization="int4_weights",
int8_layers=plan.int8_layers)`` does. How it is chosen:

1. sensitivity: for each weighted layer, the output SQNR (dB, against the
   float32 flatbuffer on ``x``) with that layer alone at 4 bits and the others
   at 8;
2. start from every layer at 4 bits (the smallest file), then raise to 8 bits
   the most sensitive layers first, each one only if the file, measured after
   the step, stays within ``budget_bytes`` (a layer that does not fit is
   skipped and the next tried);
3. the result is measured against all-4-bit on ``data`` (output SQNR, and
   accuracy when labels are given); if it is worse on either, the all-4-bit
   plan is returned. Give ``data`` the model was not tested on (a slice of
   the training set): the plan is chosen on it.

Example:
    >>> from keras_compress.quantization.mixed import MixedPrecisionPlan
    >>> p = MixedPrecisionPlan(bits={"stem": 8, "body": 4, "head": 8}, size_bytes=1000, budget_bytes=1200,
    ...                        score=0.9, all4_score=0.85, sensitivity_db={})
    >>> p.int8_layers
    ('stem', 'head')
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_compress.errors import QuantizationError

__all__ = ["MixedPrecisionPlan", "mixed_precision_plan"]


@dataclasses.dataclass(frozen=True)
class MixedPrecisionPlan:
    """Weight bits per Keras layer, the file size they give, and the scores that chose them.

    ``score`` / ``all4_score``: accuracy on ``data`` (when labels were given) or
    output SQNR in dB, of the plan and of every layer at 4 bits.
    """

    bits: dict[str, int]
    size_bytes: int
    budget_bytes: int
    score: float
    all4_score: float
    sensitivity_db: dict[str, float]
    tflite: bytes = dataclasses.field(default=b"", repr=False)

    @property
    def int8_layers(self) -> tuple[str, ...]:
        """The layers at 8 bits, for ``to_tflite(..., int8_layers=...)``."""
        return tuple(n for n, b in self.bits.items() if b == 8)


def _outputs(blob: bytes, x: np.ndarray) -> np.ndarray:
    import edgetpu

    out = edgetpu.run(edgetpu.make_interpreter(blob), x)
    return np.asarray(out[0] if isinstance(out, list) else out, dtype=np.float32)


def _score(blob: bytes, x: np.ndarray, y: np.ndarray | None, ref: np.ndarray) -> float:
    from keras_compress.convert.compare import sqnr_db

    out = _outputs(blob, x)
    if y is None:
        return float(sqnr_db(ref, out))
    return float(np.mean(out.reshape(len(out), -1).argmax(-1) == np.asarray(y).reshape(-1)))


def _split(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0], np.float32), np.asarray(data[1])
    return np.asarray(data, np.float32), None


def _sensitivity(float_blob: bytes, model, layers: list[str], x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Output SQNR (dB) with each layer alone at 4 bits (the others at 8); lower = more sensitive."""
    from keras_compress.convert.compare import sqnr_db
    from keras_compress.convert.lowbit import aeq_quantize

    sens = {}
    for name in layers:
        blob, used = aeq_quantize(float_blob, model, {n: 4 if n == name else 8 for n in layers})
        sens[name] = float(sqnr_db(ref, _outputs(blob, x))) if used[name] == 4 else float("inf")
    return sens


def mixed_precision_plan(model, data: Any, *, budget_bytes: int, max_samples: int = 200) -> MixedPrecisionPlan:
    """Choose 4 or 8 weight bits per layer so the ``int4_weights`` file fits ``budget_bytes``.

    Args:
        model: a float Keras model (built).
        data: ``x`` or ``(x, y)`` (labels: the plan is scored by accuracy); the
            first ``max_samples`` samples are used.
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
    ops = weighted_ops(float_blob, model)
    layers = list(dict.fromkeys(w.layer for w in ops))
    all4, used = aeq_quantize(float_blob, model, dict.fromkeys(layers, 4))
    if len(all4) > budget_bytes:
        raise QuantizationError(f"model {model.name!r}: budget_bytes={budget_bytes} is below the all-4-bit file "
                                f"({len(all4)} bytes); nothing fits")
    ref = _outputs(float_blob, x)
    sens = _sensitivity(float_blob, model, layers, x, ref)
    order = sorted((n for n in layers if used[n] == 4), key=lambda n: sens[n])  # most sensitive (lowest dB) first
    bits, blob = dict(used), all4
    for name in order:
        trial = {**bits, name: 8}
        cand, cand_used = aeq_quantize(float_blob, model, trial)
        if len(cand) <= budget_bytes:
            bits, blob = cand_used, cand
    score, all4_score = _score(blob, x, y, ref), _score(all4, x, y, ref)
    if score < all4_score or _score(blob, x, None, ref) < _score(all4, x, None, ref):
        bits, blob, score = used, all4, all4_score
    return MixedPrecisionPlan(bits, len(blob), int(budget_bytes), score, all4_score, sens, blob)

