"""Training inside a stage: ``model.fit`` on the labels, or distilled from a teacher variant.

Every training stage (train, distil, prune, prune_filters, qat, and the ones
to come) fits through :func:`fit`, so they share one optimizer setup, one
distillation setup (the recipe's ``distillation`` section, a
:class:`DistillationSpec`) and one per-epoch progress line.

Example:
    >>> from keras_compress.pipeline.fit import FitSpec, DistillationSpec
    >>> FitSpec().epochs, DistillationSpec().standardize
    (10, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from keras_compress.errors import ConfigError
from keras_compress.pipeline.spec import boolean, integer, number, setting, text

__all__ = ["FitSpec", "DistillationSpec", "fit", "teacher_copy", "compile_classifier", "keras_accuracy", "epoch_logger", "feature_pairs"]


def feature_pairs(where: str, v: Any) -> tuple:
    """``[{teacher: <layer>, student: <layer>}, ...]`` (or 2-item lists) as a tuple of pairs."""
    if not isinstance(v, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of {{teacher: <layer>, student: <layer>}}; got {v!r}")
    out = []
    for i, item in enumerate(v):
        if isinstance(item, Mapping):
            if set(item) != {"teacher", "student"}:
                raise ConfigError(f"{where}[{i}]: expected exactly the keys 'teacher' and 'student' (layer names); got {dict(item)!r}")
            pair = (item["teacher"], item["student"])
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pair = tuple(item)
        else:
            raise ConfigError(f"{where}[{i}]: expected {{teacher: <layer>, student: <layer>}}; got {item!r}")
        out.append((text(f"{where}[{i}].teacher", pair[0]), text(f"{where}[{i}].student", pair[1])))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class FitSpec:
    """What every training stage shares: epochs, batch size and Adam's learning rate."""

    epochs: int = setting(integer(1, 10_000), 10)
    batch_size: int = setting(integer(1, 65_536), 32)
    learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 1e-3)


@dataclass(frozen=True, kw_only=True)
class DistillationSpec:
    """How a stage with a ``teacher`` distils (the recipe's ``distillation`` section).

    Hinton logits distillation at ``temperature`` on standardized logits
    (``standardize``), ``alpha`` the weight of the label loss, plus optional
    feature pairs (each weighted ``feature_weight``); see
    :class:`keras_compress.distillation.Distiller`.
    """

    temperature: float = setting(number(0.0, 100.0, lo_open=True), 4.0)
    alpha: float = setting(number(0.0, 1.0), 0.5)
    standardize: bool = setting(boolean, True)
    features: tuple = setting(feature_pairs, ())
    feature_weight: float = setting(number(0.0, 1e6), 1.0)


def _classifier_loss(model):
    import keras

    from keras_compress.distillation import outputs_probabilities

    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))


def compile_classifier(model, learning_rate: float = 1e-3):
    """Adam + sparse categorical cross-entropy (on logits or probabilities, as the model outputs) + accuracy."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_classifier_loss(model), metrics=["accuracy"])
    return model


def epoch_logger(progress: Callable[[str], None], label: str, epochs: int):
    """A Keras callback printing ``  <label> epoch i/n, loss, train acc, seconds`` through ``progress``."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            acc = logs.get("accuracy", logs.get("sparse_categorical_accuracy"))
            loss = logs.get("total_loss", logs.get("loss"))
            parts = [f"  {label} epoch {epoch + 1}/{epochs}"]
            if loss is not None:
                parts.append(f"loss {float(loss):.4f}")
            if acc is not None:
                parts.append(f"train acc {float(acc):.2%}")
            parts.append(f"{time.perf_counter() - self.t0:.0f} s")
            progress(", ".join(parts))

    return EpochLog()


def teacher_copy(model):
    """A copy of ``model`` (same layers, names and weights) for a Distiller to freeze.

    ``keras.distillation.Distiller`` sets ``teacher.trainable = False`` on the
    model it is given, for good: a finished variant used as a teacher as is
    would stay frozen for the variants that later start ``from`` it.
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def fit(model, ctx, spec: FitSpec, *, label: str, teacher: Any = None, callbacks: Sequence[Any] = ()) -> None:
    """Train ``model`` in place on ``ctx``'s training data, on the labels or distilled from ``teacher``.

    Args:
        model: the model to train (plain, under pruning, QAT).
        ctx: the run's :class:`~keras_compress.pipeline.context.Context`.
        spec: epochs, batch size and learning rate.
        label: the name in the progress lines.
        teacher: the name of a finished variant of the run to distil from
            (with ``ctx.distillation``'s settings), a Keras model to distil
            from (e.g. the one a stage received), or ``None``. The teacher is
            copied (:func:`teacher_copy`), never frozen in place.
        callbacks: more ``fit`` callbacks (e.g. ``UpdatePruningStep``).
    """
    import keras

    cbs = [*callbacks, epoch_logger(ctx.say, label, spec.epochs)]
    kwargs = dict(epochs=spec.epochs, batch_size=spec.batch_size, callbacks=cbs, verbose=0)
    if teacher is None:
        compile_classifier(model, spec.learning_rate).fit(ctx.x_train, ctx.y_train, **kwargs)
        return
    from keras_compress.distillation import Distiller

    d = ctx.distillation
    distiller = Distiller(
        teacher_copy(ctx.model(teacher) if isinstance(teacher, str) else teacher),
        model,
        student_loss_weight=d.alpha,
        temperature=d.temperature,
        standardize=d.standardize,
        features=list(d.features),
        feature_weight=d.feature_weight,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), metrics=["accuracy"])
    distiller.fit(ctx.x_train, ctx.y_train, **kwargs)


def keras_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a Keras classifier (first output) on ``(x, y)``."""
    scores = model.predict(x, batch_size=256, verbose=0)
    if isinstance(scores, (list, tuple, dict)):
        scores = list(scores.values())[0] if isinstance(scores, dict) else scores[0]
    return float(np.mean(np.argmax(scores, -1) == np.asarray(y).reshape(-1)))
