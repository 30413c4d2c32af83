"""The :class:`Distiller`: ``keras.distillation.Distiller`` for pruning and QAT students.

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.distillation import Distiller
    >>> from keras_compress.pruning import prune_low_magnitude, UpdatePruningStep, ConstantSparsity
    >>> mk = lambda w: keras.Sequential([keras.Input((6,)), keras.layers.Dense(w, name="h"),
    ...                                  keras.layers.Dense(2, name="out")])
    >>> d = Distiller(mk(16), prune_low_magnitude(mk(4), ConstantSparsity(0.5, 0, frequency=1)))
    >>> d.compile("adam")
    >>> _ = d.fit(np.ones((8, 6)), np.zeros(8), verbose=0, callbacks=[UpdatePruningStep()])
    >>> [type(l).__name__ for l in d.get_student().layers]
    ['Dense', 'Dense']
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

from keras_compress.distillation.losses import (
    _PACKAGE,
    FeatureDistillation,
    LogitsDistillation,
    inner_layer,
    outputs_probabilities,
)
from keras_compress.errors import CompressError, DistillationError

__all__ = ["Distiller", "strip_student", "distill"]


def _prune_wrappers(model) -> list:
    from keras_compress.pruning import collect_wrappers

    return collect_wrappers(model)


def output_structure(model):
    """``model``'s outputs as the model returns them: one tensor, or the list / dict of them."""
    try:
        return model.output
    except (AttributeError, ValueError):  # a Sequential model has `outputs` before it is called
        outputs = model.outputs
        return outputs[0] if len(outputs) == 1 else outputs


def _check_models(teacher, student, student_loss_weight) -> None:
    """Models with symbolic inputs, an unpruned teacher, a weight in [0, 1] (and 0 for several outputs)."""
    for role, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, keras.Model):
            raise DistillationError(f"{role}: expected a keras.Model, got {type(m).__name__}")
        if not getattr(m, "inputs", None):
            raise DistillationError(
                f"{role} model {m.name!r} has no symbolic inputs: build it with keras.Input (Functional or Sequential)"
            )
    if _prune_wrappers(teacher):
        raise DistillationError(
            f"teacher model {teacher.name!r} has pruning wrappers: strip them with "
            "keras_compress.pruning.strip_pruning(teacher) before distilling from it"
        )
    w = student_loss_weight
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
        raise DistillationError(f"student_loss_weight: expected a number in [0, 1], got {w!r}")
    n = len(keras.tree.flatten(output_structure(student)))
    if n > 1 and w > 0:
        # Keras 3.15's Distiller maps its (tracked) label-loss list over the labels' tuple and the
        # outputs' list, whose container types never agree: fit fails. The distillation terms work.
        raise DistillationError(
            f"student model {student.name!r} has {n} outputs: keras.distillation.Distiller (Keras 3.15) cannot apply "
            f"a label loss to several outputs; distil it from the teacher alone with student_loss_weight=0 (got {w})"
        )


def _losses(distillation_losses, weights, temperature, standardize, features, feature_weight):
    """(losses, weights): the given losses (default: one LogitsDistillation) plus the feature losses."""
    if distillation_losses is None:
        losses = [LogitsDistillation(temperature, standardize=standardize)]
    elif isinstance(distillation_losses, (list, tuple)):
        losses = list(distillation_losses)
    else:
        losses = [distillation_losses]
    weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
    if len(weights) != len(losses):
        raise DistillationError(f"distillation_loss_weights: expected {len(losses)} weights (one per loss), got {len(weights)}")
    for f in features or ():
        if isinstance(f, keras.distillation.DistillationLoss):
            losses.append(f)
        elif isinstance(f, (list, tuple)) and len(f) == 2 and all(isinstance(n, str) for n in f):
            losses.append(FeatureDistillation(f[0], f[1]))
        else:
            raise DistillationError(f"features: expected FeatureDistillation objects or (teacher_layer, student_layer) pairs, got {f!r}")
        weights.append(float(feature_weight))
    return losses, weights


def _find_layer(model, name: str, role: str) -> str:
    """The actual name of ``model``'s layer called ``name``, possibly inside a wrapper."""
    names = [layer.name for layer in model.layers]
    if name in names:
        return name
    matches = [layer.name for layer in model.layers if layer is not inner_layer(layer) and inner_layer(layer).name == name]
    if len(matches) == 1:
        return matches[0]
    raise DistillationError(f"{role} model {model.name!r} has no layer {name!r} (wrapped or not); its layers are: {', '.join(names)}")


def _resolve(losses, teacher, student) -> None:
    """Fill what each loss needs from the models: logits or probabilities, real (wrapped) layer names."""
    for loss in losses:
        if isinstance(loss, LogitsDistillation):
            if loss.teacher_from_logits is None:
                loss.teacher_from_logits = not outputs_probabilities(teacher)
            if loss.student_from_logits is None:
                loss.student_from_logits = not outputs_probabilities(student)
        if getattr(loss, "teacher_layer_name", None):
            loss.teacher_layer_name = _find_layer(teacher, loss.teacher_layer_name, "teacher")
        if getattr(loss, "student_layer_name", None):
            loss.student_layer_name = _find_layer(student, loss.student_layer_name, "student")


def _feature_shape(model, layer_name):
    if layer_name is None:
        return tuple(model.outputs[0].shape)
    return tuple(model.get_layer(layer_name).output.shape)


def _projection(index: int, loss: FeatureDistillation, teacher, student):
    """The learned Dense that maps the student's feature width to the teacher's, or None."""
    t_shape = _feature_shape(teacher, loss.teacher_layer_name)
    s_shape = _feature_shape(student, loss.student_layer_name)
    pair = f"feature distillation {loss.teacher_layer_name!r} (teacher) -> {loss.student_layer_name!r} (student)"
    if len(t_shape) != len(s_shape) or tuple(t_shape[1:-1]) != tuple(s_shape[1:-1]):
        raise DistillationError(
            f"{pair}: shapes {t_shape} and {s_shape} differ beyond the channel axis; "
            "pick layers with the same spatial size (after the same number of poolings)"
        )
    if loss.projection == "always" or (loss.projection == "auto" and t_shape[-1] != s_shape[-1]):
        layer = keras.layers.Dense(int(t_shape[-1]), use_bias=False, name=f"projection_{index}")
        layer.build(tuple(s_shape))
        loss.projection_layer = layer
        return layer
    if t_shape[-1] != s_shape[-1]:
        raise DistillationError(f"{pair}: widths {t_shape[-1]} and {s_shape[-1]} differ and projection='none'; use projection='auto'")
    return None


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Distiller(keras.distillation.Distiller):
    """A ``keras.distillation.Distiller`` for compression: pruning/QAT students, projections, strip.

    ``Distiller(teacher, student, temperature=4.0)`` and
    ``Distiller(teacher, student, distillation_losses=LogitsDistillation(temperature=4.0))``
    are the same distiller: both distil standardized logits (see
    :class:`~keras_compress.distillation.LogitsDistillation`).

    Args:
        teacher: a trained Functional or Sequential ``keras.Model`` (frozen here;
            it must not contain pruning wrappers: strip it first).
        student: the model to train; a plain, pruning or QAT model with the
            teacher's input and output shapes (one output or several).
        distillation_losses: a loss or list of losses; default a
            :class:`LogitsDistillation` at ``temperature``. Keras's own loss
            classes work too.
        distillation_loss_weights: one weight per loss in ``distillation_losses`` (default 1.0 each).
        student_loss_weight: ``alpha``, the weight of the label loss; the
            distillation terms get ``1 - alpha`` (default 0.5, as Keras).
        temperature: temperature of the default logits loss.
        standardize: z-score the logits in the default logits loss (default True, as
            :class:`LogitsDistillation`).
        features: extra feature losses: :class:`FeatureDistillation` objects or
            ``(teacher_layer, student_layer)`` pairs (projection learned when
            widths differ), each weighted ``feature_weight``.
        feature_weight: weight of each feature loss given through ``features``.
        name: model name.
        **kwargs: passed to ``keras.Model``.

    Raises:
        DistillationError: incompatible models, unknown layer names, spatial
            size mismatch of distilled features, or a pruned teacher.
    """

    def __init__(
        self,
        teacher,
        student,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=0.5,
        *,
        temperature=4.0,
        standardize=True,
        features: Sequence[Any] | None = None,
        feature_weight=1.0,
        name="distiller",
        **kwargs,
    ):
        _check_models(teacher, student, student_loss_weight)
        losses, weights = _losses(distillation_losses, distillation_loss_weights, temperature, standardize, features, feature_weight)
        _resolve(losses, teacher, student)
        try:
            super().__init__(
                teacher=teacher,
                student=student,
                distillation_losses=losses,
                distillation_loss_weights=weights,
                student_loss_weight=float(student_loss_weight),
                name=name,
                **kwargs,
            )
        except ValueError as e:
            if isinstance(e, CompressError):
                raise
            raise DistillationError(f"teacher {teacher.name!r} and student {student.name!r}: {e}") from e
        self.temperature = float(temperature)
        self.standardize = bool(standardize)
        self.projections = [
            p for i, loss in enumerate(self.distillation_losses)
            if isinstance(loss, FeatureDistillation) and (p := _projection(i, loss, teacher, student)) is not None
        ]

    @property
    def layers(self):
        # Keras builds one feature-extractor model per side for feature losses: views that
        # share the teacher's and student's layers. Callbacks that walk `layers` (e.g.
        # UpdatePruningStep) would see every student wrapper twice through them, so only the
        # teacher, the student and the projections are listed (no private Keras names needed:
        # every sub-model other than the teacher and student is such a view).
        return [
            layer for layer in super().layers
            if not isinstance(layer, keras.Model) or layer is self.teacher or layer is self.student
        ]

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compile with the student's label loss (default: sparse categorical cross-entropy).

        Args:
            optimizer: optimizer name or instance.
            loss: label loss; ``None`` picks sparse categorical cross-entropy on
                logits or probabilities, as the student outputs.
            metrics: list of metrics on the student's output (e.g. ``["accuracy"]``).
            **kwargs: passed to ``keras.Model.compile``.
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(self.student))
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        self._kc_compile_args = {"optimizer": self.optimizer, "loss": loss, "metrics": metrics, **kwargs}

    def get_compile_config(self):
        args = getattr(self, "_kc_compile_args", None)
        if args is None:
            return None
        return keras.saving.serialize_keras_object(args)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        config["standardize"] = self.standardize
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        config["distillation_losses"] = [keras.saving.deserialize_keras_object(x) for x in config["distillation_losses"]]
        return cls(**config)

    def get_student(self, strip: bool = True):
        """The trained student; with ``strip=True`` its pruning wrappers are removed.

        A QAT student keeps its fake-quant layers: :func:`~keras_compress.convert.to_tflite`
        converts it to int8 with its learned ranges (no calibration data).
        """
        return strip_student(self.student) if strip else self.student


def strip_student(model):
    """``model`` with pruning wrappers removed (zeros kept), or ``model`` itself if it has none."""
    if not _prune_wrappers(model):
        return model
    from keras_compress.pruning import strip_pruning

    return strip_pruning(model)


def distill(
    teacher,
    student,
    x,
    y=None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    temperature: float = 4.0,
    alpha: float = 0.5,
    standardize: bool = True,
    features: Sequence[Any] | None = None,
    feature_weight: float = 1.0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    validation_data=None,
    verbose: int = 0,
    strip: bool = True,
):
    """Train ``student`` from ``teacher`` (and the labels) and return it, stripped.

    Adds :class:`~keras_compress.pruning.UpdatePruningStep` itself when the
    student has pruning wrappers and no such callback was given. Seeding (of
    the batch order and of any projection) is the caller's: call
    ``keras.utils.set_random_seed`` first for a repeatable run.

    Args:
        teacher: trained teacher model.
        student: plain, pruning or QAT student.
        x, y: training inputs and integer labels (or a ``tf.data`` dataset as ``x``).
        epochs, batch_size, learning_rate: training settings (Adam).
        temperature, alpha, standardize: Hinton temperature, label-loss weight, logit z-scoring.
        features, feature_weight: feature losses, see :class:`Distiller`.
        callbacks: more ``fit`` callbacks.
        validation_data: passed to ``fit``.
        verbose: ``fit`` verbosity.
        strip: strip pruning wrappers from the returned student.

    Returns:
        The trained student (the same object as ``student`` unless stripped).

    Example:
        >>> student = distill(teacher, student, x_train, y_train, epochs=5)  # doctest: +SKIP
    """
    d = Distiller(teacher, student, student_loss_weight=alpha, temperature=temperature, standardize=standardize,
                  features=features, feature_weight=feature_weight)
    d.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
    callbacks = list(callbacks)
    if _prune_wrappers(student):
        from keras_compress.pruning import UpdatePruningStep

        if not any(isinstance(c, UpdatePruningStep) for c in callbacks):
            callbacks.append(UpdatePruningStep())
    d.fit(x, y, epochs=epochs, batch_size=None if y is None else batch_size, callbacks=callbacks,
          validation_data=validation_data, verbose=verbose)
    return d.get_student(strip=strip)
