"""Per-layer sensitivity: what compressing one layer alone, at one setting, costs in accuracy.

For every ``(layer, method, setting)`` of a :class:`~keras_compress.search.space.SearchSpace`,
the setting is applied to that layer alone, at once
(:func:`~keras_compress.search.apply.apply_oneshot`), optionally followed by a
brief recovery (``recovery_steps`` steps of distillation from the original, with
the entry's zeros and clusters re-applied after every step; far from a full fine-tuning: methods differ in how much fine-tuning wins back, and
a purely one-shot measure would favour the ones that lose little at once),
and the result is evaluated on held-out data: top-1 accuracy, and the KL divergence of its softmax from the
original model's (nats, mean over samples). The allocator's ``damage`` of an
entry is ``max(accuracy drop, 0) + KL``: the accuracy drop is what the user
loses, the KL separates the many mild settings whose accuracy does not move
on a few hundred samples (and it is what distillation then minimizes).

The results go to a JSON cache after every entry (written atomically), keyed by
a digest of the model's architecture and weights and of the held-out data: a
run interrupted (Ctrl-C) resumes where it stopped, and an unchanged model is
never analysed twice. A cache of another model or data is set aside and
started afresh, with a message.

Example:
    >>> from keras_compress.search.sensitivity import Sensitivity
    >>> s = Sensitivity(base_accuracy=0.98, entries={"fc|sparsity|0.9": {"accuracy": 0.97, "kl": 0.05}})
    >>> round(s.damage("fc", "sparsity", 0.9), 3), s.damage("fc", "sparsity", None)
    (0.06, 0.0)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_compress.search.plan import Plan

__all__ = ["Sensitivity", "analyse", "evaluate_plans", "entry_key", "model_digest", "data_digest"]

CACHE_FORMAT = "keras-compress-sensitivity/1"


def entry_key(layer: str, method: str, setting: Any) -> str:
    """The cache key of one entry: ``"conv3|filters|0.5"``."""
    return f"{layer}|{method}|{setting:g}"


def model_digest(model) -> str:
    """SHA-256 of the model's architecture (layer configs, not the compile state) and weights."""
    h = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the held-out inputs and labels."""
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


@dataclass
class Sensitivity:
    """The analysis: the original's held-out accuracy and ``{entry_key: {"accuracy", "kl", "seconds"}}``."""

    base_accuracy: float
    entries: dict[str, dict[str, float]] = field(default_factory=dict)

    def accuracy_drop(self, layer: str, method: str, setting: Any) -> float:
        """Held-out accuracy lost by this one setting alone (0 for ``None``)."""
        if setting is None:
            return 0.0
        return self.base_accuracy - self.entries[entry_key(layer, method, setting)]["accuracy"]

    def damage(self, layer: str, method: str, setting: Any) -> float:
        """``max(accuracy drop, 0) + KL`` of this one setting alone (0 for ``None``)."""
        if setting is None:
            return 0.0
        e = self.entries[entry_key(layer, method, setting)]
        return max(self.base_accuracy - e["accuracy"], 0.0) + e["kl"]

    def plan_damage(self, plan: Plan) -> float:
        """Sum of the damages of the plan's settings (the additive model the allocator maximizes against)."""
        return sum(self.damage(n, m, v) for n, s in plan.layers.items() for m, v in s.items())

    def predicted_accuracy(self, plan: Plan) -> float:
        """The original's held-out accuracy minus the sum of the plan's accuracy drops (before fine-tuning)."""
        return self.base_accuracy - sum(max(self.accuracy_drop(n, m, v), 0.0)
                                        for n, s in plan.layers.items() for m, v in s.items())


def _softmax(z: np.ndarray, logits: bool) -> np.ndarray:
    if not logits:
        return np.clip(z, 1e-12, 1.0)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eager batches: one ``predict`` per short-lived model would retrace a tf.function each time."""
    import keras

    out = [keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def _recover(student, teacher, recovery: tuple, steps: int, plan: Plan, batch_size: int = 32) -> None:
    """``steps`` Adam steps of distillation from ``teacher``, the plan's zeros and clusters kept after each."""
    import keras

    from keras_compress.distillation import Distiller
    from keras_compress.search.apply import keep_applied

    x, y = recovery
    n = min(len(x), steps * batch_size)
    d = Distiller(teacher, student, student_loss_weight=0.5, temperature=4.0)
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    callbacks = [keep_applied(plan)] if any(m in plan.methods() for m in ("sparsity", "clusters", "bits")) else []
    d.fit(x[:n], y[:n], epochs=1, batch_size=batch_size, verbose=0, shuffle=False, callbacks=callbacks)


def _evaluate(model, x: np.ndarray, y: np.ndarray, ref: np.ndarray | None, logits: bool) -> tuple[dict, np.ndarray]:
    p = _softmax(_predict(model, x), logits)
    out = {"accuracy": float(np.mean(np.argmax(p, -1) == y.reshape(-1)))}
    if ref is not None:
        out["kl"] = float(np.mean(np.sum(ref * (np.log(np.clip(ref, 1e-12, 1)) - np.log(np.clip(p, 1e-12, 1))), -1)))
    return out, p


def _load(path: Path, digest: dict, say: Callable[[str], None]) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        say(f"sensitivity: cache {path} unreadable ({e}); starting afresh")
        return {}
    if data.get("format") != CACHE_FORMAT or data.get("digest") != digest:
        stale = path.with_name(path.name + ".stale")
        os.replace(path, stale)
        say(f"sensitivity: cache {path} is for another model or data; moved to {stale.name}, starting afresh")
        return {}
    return dict(data.get("entries", {}))


def _save(path: Path, digest: dict, base: float, entries: dict) -> None:
    from edgetpu import atomic_write_bytes

    text = json.dumps({"format": CACHE_FORMAT, "digest": digest, "base_accuracy": base, "entries": entries}, indent=1)
    atomic_write_bytes(path, text.encode())


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def analyse(model, space, x: np.ndarray, y: np.ndarray, *, cache: str | os.PathLike | None = None,
            recovery: tuple | None = None, recovery_steps: int = 0,
            progress: Callable[[str], None] | None = None) -> Sensitivity:
    """Evaluate every entry of ``space`` on ``(x, y)``, resuming from ``cache``.

    Args:
        model: the original Keras classifier (logits or probabilities out).
        space: a :class:`~keras_compress.search.space.SearchSpace` of ``model``.
        x, y: held-out inputs and integer labels (not the test set the result is reported on).
        cache: a JSON file; entries already there (same model, data and recovery) are not recomputed.
        recovery: ``(x, y)`` training data for a brief recovery of each entry before it is
            evaluated, or ``None`` (evaluate right after the one-shot application).
        recovery_steps: distillation steps (batch 32) of that recovery: how much of what
            fine-tuning will win back the analysis sees (filter pruning loses much at once
            and recovers most; a low-rank factorization loses little and recovers little).
        progress: one line per entry (with a bar), or ``None`` for silence.

    Returns:
        The :class:`Sensitivity`. Ctrl-C stops it with every finished entry saved.
    """
    from keras_compress.distillation import outputs_probabilities
    from keras_compress.search.apply import apply_oneshot

    say = progress or (lambda _m: None)
    y = np.asarray(y).reshape(-1)
    logits = not outputs_probabilities(model)
    steps = recovery_steps if recovery is not None else 0
    digest = {"model": model_digest(model), "data": data_digest(x, y), "recovery_steps": steps, "recovery": "masked"}
    teacher = None
    if steps:
        from keras_compress.pipeline.fit import teacher_copy

        teacher = teacher_copy(model)
    path = Path(cache) if cache is not None else None
    entries = _load(path, digest, say) if path else {}
    base, ref = _evaluate(model, x, y, None, logits)
    todo = [(n, m, s) for n, m, s in space.entries() if entry_key(n, m, s) not in entries]
    total = space.size()
    after = f", each after {steps} recovery steps" if steps else ", each right after applying it"
    say(f"sensitivity: {total} settings on {len(x)} held-out samples{after}; {total - len(todo)} from the cache, "
        f"{len(todo)} to compute")
    for i, (layer, method, setting) in enumerate(todo, start=total - len(todo) + 1):
        t0 = time.perf_counter()
        plan = Plan({layer: {method: setting}})
        student = apply_oneshot(model, plan)
        if steps:
            import keras

            keras.utils.set_random_seed(0)  # the same entry recovers the same way in every run
            _recover(student, teacher, recovery, steps, plan)
        result, _ = _evaluate(student, x, y, ref, logits)
        result["seconds"] = round(time.perf_counter() - t0, 3)
        entries[entry_key(layer, method, setting)] = result
        if path:
            _save(path, digest, base["accuracy"], entries)
        say(f"sensitivity {_bar(i, total)} {layer} {method} {setting:g}: "
            f"accuracy {result['accuracy']:.2%} ({result['accuracy'] - base['accuracy']:+.2%}), KL {result['kl']:.4f}")
    return Sensitivity(base["accuracy"], entries)


def evaluate_plans(model, plans, x: np.ndarray, y: np.ndarray, *, recovery: tuple, steps: int,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Each whole plan applied at once, recovered for ``steps`` distillation steps, evaluated on ``(x, y)``.

    The sensitivity model adds single-layer damages; this measures the plans
    themselves (interactions included) on the held-out data, to choose among a
    few candidates that all meet the budget.

    Returns:
        ``[{"accuracy", "kl"}]`` in the order of ``plans``.
    """
    import keras

    from keras_compress.distillation import outputs_probabilities
    from keras_compress.pipeline.fit import teacher_copy
    from keras_compress.search.apply import apply_oneshot

    say = progress or (lambda _m: None)
    y = np.asarray(y).reshape(-1)
    logits = not outputs_probabilities(model)
    _, ref = _evaluate(model, x, y, None, logits)
    teacher = teacher_copy(model)
    out = []
    for i, plan in enumerate(plans, start=1):
        student = apply_oneshot(model, plan)
        keras.utils.set_random_seed(0)
        _recover(student, teacher, recovery, steps, plan)
        result, _ = _evaluate(student, x, y, ref, logits)
        out.append(result)
        say(f"candidates {_bar(i, len(plans))} accuracy {result['accuracy']:.2%}, KL {result['kl']:.4f}: {plan.describe()}")
    return out
