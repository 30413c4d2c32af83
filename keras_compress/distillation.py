"""Knowledge distillation that composes with pruning and QAT, on ``keras.distillation``.

Keras 3.12+ ships :class:`keras.distillation.Distiller` with
``LogitsDistillation`` and ``FeatureDistillation``. This module builds on them
and adds what compression needs:

- the student may be a pruning model (:func:`keras_compress.pruning.prune_low_magnitude`)
  or a QAT model (:func:`keras_compress.quantization.quantize_model`); callbacks
  such as :class:`~keras_compress.pruning.UpdatePruningStep` go to ``fit`` as
  usual and find the student's wrappers (and never the teacher's);
- Hinton et al. logits distillation with a temperature and a weight, for
  models that output logits *or* softmax probabilities (detected);
- feature distillation between named intermediate layers, with a learned
  projection (a bias-free ``Dense`` on the channel axis, trained with the
  student and dropped afterwards) when the widths differ; student layer names
  are found through pruning / QAT wrappers, so ``"conv3"`` still means the
  student's ``conv3`` after ``prune_low_magnitude`` renamed it;
- :meth:`Distiller.get_student` returns the trained student stripped of its
  pruning wrappers, ready for :func:`keras_compress.convert.to_tflite`;
- a whole distiller (teacher, student, projections, optimizer state, pruning
  step) saves to one ``.keras`` file mid-training and resumes with
  ``keras.models.load_model`` then ``fit`` (no need to call ``compile`` again).

The loss is Keras's: ``alpha * label_loss + (1 - alpha) * sum_i(w_i * L_i)``,
where ``alpha`` is ``student_loss_weight`` and the logits term is
``T**2 * KL(softmax(t / T) || softmax(s / T))`` (Hinton et al., 2015).

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.distillation import Distiller
    >>> def cnn(width, name):
    ...     x = inputs = keras.Input((8, 8, 1))
    ...     x = keras.layers.Conv2D(width, 3, activation="relu", name="conv")(x)
    ...     x = keras.layers.GlobalAveragePooling2D()(x)
    ...     return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=name)
    >>> teacher, student = cnn(16, "teacher"), cnn(4, "student")
    >>> d = Distiller(teacher, student, temperature=4.0, student_loss_weight=0.5,
    ...               features=[("conv", "conv")])   # widths 16 vs 4: learned projection
    >>> d.compile(optimizer="adam")                   # label loss picked from the outputs
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> _ = d.fit(x, y, epochs=1, verbose=0)
    >>> [l.name for l in d.get_student().layers][-1]
    'logits'
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from keras_compress.errors import CompressError

__all__ = [
    "Distiller",
    "LogitsDistillation",
    "FeatureDistillation",
    "DistillationError",
    "distill",
    "strip_student",
    "outputs_probabilities",
    "scratch_and_distilled",
]

_PACKAGE = "keras_compress.distillation"
_EPS = 1e-12


class DistillationError(CompressError, ValueError):
    """Teacher, student or a distillation setting cannot work together."""


def _is_kl(loss) -> bool:
    return (
        loss is keras.losses.kl_divergence
        or isinstance(loss, keras.losses.KLDivergence)
        or getattr(loss, "__name__", None) in ("kl_divergence", "kld", "KLD")
    )


def _inner(layer):
    """The layer a pruning / QAT / other ``Wrapper`` holds (recursively), else the layer."""
    seen = 0
    while getattr(layer, "layer", None) is not None and isinstance(layer.layer, keras.layers.Layer) and seen < 8:
        layer = layer.layer
        seen += 1
    return layer


def _zscore(logits):
    mean = ops.mean(logits, axis=-1, keepdims=True)
    std = ops.std(logits, axis=-1, keepdims=True)
    return (logits - mean) / (std + 1e-6)


def outputs_probabilities(model) -> bool:
    """True when ``model``'s last layer ends with a softmax (it outputs probabilities).

    Wrappers (pruning, QAT) are looked through.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        >>> outputs_probabilities(m)
        True
    """
    layers = getattr(model, "layers", None)
    if not layers:
        return False
    last = _inner(layers[-1])
    if isinstance(last, keras.Model):
        return outputs_probabilities(last)
    if isinstance(last, keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    if isinstance(act, keras.layers.Layer):
        return isinstance(act, keras.layers.Softmax)
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogitsDistillation(keras.distillation.LogitsDistillation):
    """Hinton logits distillation that also accepts softmax outputs.

    ``keras.distillation.LogitsDistillation`` divides its inputs by the
    temperature and applies a softmax, so it needs logits. A model ending in a
    softmax is handled here by taking ``log(p)``, which equals the logits up to
    a per-sample constant that the softmax cancels. :class:`Distiller` sets the
    two flags from the models when they are left to ``None``.

    Args:
        temperature: softening temperature ``T`` (> 0); 2-8 is usual.
        loss: loss between the softened distributions (default KL divergence,
            scaled by ``T**2`` as in Hinton et al.).
        teacher_from_logits: whether the teacher outputs logits (``None``: detect).
        student_from_logits: whether the student outputs logits (``None``: detect).
        standardize: z-score each sample's logits (teacher and student) before
            the temperature, as in "Logit Standardization in Knowledge
            Distillation" (Sun et al., CVPR 2024): the student then matches the
            teacher's *relative* logits, not their scale. Default False (plain Hinton).

    Example:
        >>> import numpy as np
        >>> t = np.array([[2.0, 0.0, -2.0]], "float32")
        >>> round(float(LogitsDistillation(4.0).compute_loss(t, t)), 6)
        0.0
        >>> round(float(LogitsDistillation(1.0).compute_loss(t, t[:, ::-1])), 3)  # KL(p || reversed p)
        3.404
    """

    def __init__(
        self, temperature=4.0, loss="kl_divergence", teacher_from_logits=None, student_from_logits=None, standardize=False
    ):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise DistillationError(f"temperature: expected a number > 0, got {temperature!r}")
        super().__init__(temperature=float(temperature), loss=loss)
        self.teacher_from_logits = teacher_from_logits
        self.student_from_logits = student_from_logits
        self.standardize = bool(standardize)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        if self.teacher_from_logits is False:
            teacher_outputs = ops.log(ops.clip(teacher_outputs, _EPS, 1.0))
        if self.student_from_logits is False:
            student_outputs = ops.log(ops.clip(student_outputs, _EPS, 1.0))
        if self.standardize:
            teacher_outputs, student_outputs = _zscore(teacher_outputs), _zscore(student_outputs)
        if _is_kl(self.loss) and not isinstance(teacher_outputs, (list, tuple, dict)):
            # keras.losses.get("kl_divergence") is the *function*, which the
            # Keras class tests with isinstance(KLDivergence): its softmax branch
            # is skipped and KL runs on clipped raw logits (Keras 3.15). Compute
            # Hinton's term here, with log-softmax for stability.
            t = ops.log_softmax(ops.divide(teacher_outputs, self.temperature), axis=-1)
            s = ops.log_softmax(ops.divide(student_outputs, self.temperature), axis=-1)
            kl = ops.sum(ops.exp(t) * (t - s), axis=-1)
            return ops.mean(kl) * (self.temperature**2)
        return super().compute_loss(teacher_outputs, student_outputs, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            teacher_from_logits=self.teacher_from_logits,
            student_from_logits=self.student_from_logits,
            standardize=self.standardize,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


_PROJECTIONS = ("auto", "always", "none")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureDistillation(keras.distillation.FeatureDistillation):
    """Feature (hint) distillation between two named layers, with a learned projection.

    The student's feature map goes through a bias-free ``Dense`` on its last
    (channel) axis, mapping its width to the teacher's, before the loss. The
    projection belongs to the :class:`Distiller` (so the optimizer trains it
    and a saved distiller keeps it) and is not part of the student you get
    back. Spatial sizes must match (pick layers after the same number of
    poolings).

    Args:
        teacher_layer_name: name of the teacher layer whose output is the target.
        student_layer_name: name of the student layer (wrappers are looked
            through: ``"conv3"`` finds ``prune_low_magnitude_conv3``).
        loss: loss between the features (default ``"mse"``).
        projection: ``"auto"`` (only when the widths differ), ``"always"`` or
            ``"none"``.

    Example:
        >>> f = FeatureDistillation("conv3", "conv3")
        >>> f.projection
        'auto'
    """

    def __init__(self, teacher_layer_name=None, student_layer_name=None, loss="mse", projection="auto"):
        if projection not in _PROJECTIONS:
            raise DistillationError(f"projection: expected one of {', '.join(map(repr, _PROJECTIONS))}, got {projection!r}")
        super().__init__(loss=loss, teacher_layer_name=teacher_layer_name, student_layer_name=student_layer_name)
        self.projection = projection
        self.projection_layer = None  # set by Distiller

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        if self.projection_layer is not None:
            student_outputs = self.projection_layer(student_outputs)
        return super().compute_loss(teacher_outputs, student_outputs, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["projection"] = self.projection
        return config


def _find_layer(model, name: str, role: str) -> str:
    """The actual name of ``model``'s layer called ``name``, possibly inside a wrapper."""
    names = [l.name for l in model.layers]
    if name in names:
        return name
    matches = [l.name for l in model.layers if l is not _inner(l) and _inner(l).name == name]
    if len(matches) == 1:
        return matches[0]
    raise DistillationError(
        f"{role} model {model.name!r} has no layer {name!r} (wrapped or not); its layers are: {', '.join(names)}"
    )


def _collect_prune_wrappers(model) -> list:
    try:
        from keras_compress.pruning import collect_wrappers
    except ImportError:  # pragma: no cover - pruning ships with keras_compress
        return []
    return collect_wrappers(model)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Distiller(keras.distillation.Distiller):
    """A ``keras.distillation.Distiller`` for compression: pruning/QAT students, projections, strip.

    Args:
        teacher: a trained Functional or Sequential ``keras.Model`` (frozen here;
            it must not contain pruning wrappers: strip it first).
        student: the model to train; a plain, pruning or QAT model with the
            teacher's input and output shapes.
        distillation_losses: a loss or list of losses; default a
            :class:`LogitsDistillation` at ``temperature``. Keras's own loss
            classes work too.
        distillation_loss_weights: one weight per loss in
            ``distillation_losses`` (default 1.0 each).
        student_loss_weight: ``alpha``, the weight of the label loss; the
            distillation terms get ``1 - alpha`` (default 0.5, as Keras).
        temperature: temperature of the default logits loss.
        standardize: z-score the logits in the default logits loss (see
            :class:`LogitsDistillation`); default True, because a teacher
            trained without regularization has logits too large for plain
            Hinton distillation to help (on load_shapes it made the student
            worse than training from scratch; see bench/bench_distillation.py).
        features: extra feature losses: :class:`FeatureDistillation` objects or
            ``(teacher_layer, student_layer)`` pairs (projection learned when
            widths differ), each weighted ``feature_weight``.
        feature_weight: weight of each feature loss given through ``features``.
        name: model name.
        **kwargs: passed to ``keras.Model``.

    Raises:
        DistillationError: incompatible models, unknown layer names, spatial
            size mismatch of distilled features, or a pruned teacher.

    Example:
        >>> import keras
        >>> from keras_compress.pruning import prune_low_magnitude, UpdatePruningStep, ConstantSparsity
        >>> mk = lambda w: keras.Sequential([keras.Input((6,)), keras.layers.Dense(w, name="h"),
        ...                                  keras.layers.Dense(2, name="out")])
        >>> d = Distiller(mk(16), prune_low_magnitude(mk(4), ConstantSparsity(0.5, 0, frequency=1)))
        >>> d.compile("adam")
        >>> import numpy as np
        >>> _ = d.fit(np.ones((8, 6)), np.zeros(8), verbose=0, callbacks=[UpdatePruningStep()])
        >>> [type(l).__name__ for l in d.get_student().layers]
        ['Dense', 'Dense']
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
        for role, m in (("teacher", teacher), ("student", student)):
            if not isinstance(m, keras.Model):
                raise DistillationError(f"{role}: expected a keras.Model, got {type(m).__name__}")
            if not getattr(m, "inputs", None):
                raise DistillationError(
                    f"{role} model {m.name!r} has no symbolic inputs: build it with keras.Input (Functional or Sequential)"
                )
        if _collect_prune_wrappers(teacher):
            raise DistillationError(
                f"teacher model {teacher.name!r} has pruning wrappers: strip them with "
                "keras_compress.pruning.strip_pruning(teacher) before distilling from it"
            )
        if isinstance(student_loss_weight, bool) or not isinstance(student_loss_weight, (int, float)) or not 0.0 <= student_loss_weight <= 1.0:
            raise DistillationError(f"student_loss_weight: expected a number in [0, 1], got {student_loss_weight!r}")
        if distillation_losses is None:
            losses, weights = [LogitsDistillation(temperature, standardize=standardize)], [1.0]
        elif isinstance(distillation_losses, (list, tuple)):
            losses = list(distillation_losses)
            weights = list(distillation_loss_weights) if distillation_loss_weights is not None else [1.0] * len(losses)
            if len(weights) != len(losses):
                raise DistillationError(
                    f"distillation_loss_weights: expected {len(losses)} weights (one per loss), got {len(weights)}"
                )
        else:
            losses = [distillation_losses]
            weights = [float(distillation_loss_weights[0])] if distillation_loss_weights else [1.0]
        for f in features or ():
            if isinstance(f, keras.distillation.DistillationLoss):
                losses.append(f)
            elif isinstance(f, (list, tuple)) and len(f) == 2 and all(isinstance(n, str) for n in f):
                losses.append(FeatureDistillation(f[0], f[1]))
            else:
                raise DistillationError(
                    f"features: expected FeatureDistillation objects or (teacher_layer, student_layer) pairs, got {f!r}"
                )
            weights.append(float(feature_weight))

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
        try:
            super().__init__(
                teacher=teacher,
                student=student,
                distillation_losses=losses,
                distillation_loss_weights=[float(w) for w in weights],
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
        self.projections = self._build_projections()

    def _build_projections(self) -> list:
        projections = []
        for i, loss in enumerate(self.distillation_losses):
            if not isinstance(loss, FeatureDistillation):
                continue
            t_shape = self._feature_shape(self.teacher, loss.teacher_layer_name)
            s_shape = self._feature_shape(self.student, loss.student_layer_name)
            if len(t_shape) != len(s_shape) or tuple(t_shape[1:-1]) != tuple(s_shape[1:-1]):
                raise DistillationError(
                    f"feature distillation {loss.teacher_layer_name!r} (teacher) -> {loss.student_layer_name!r} "
                    f"(student): shapes {tuple(t_shape)} and {tuple(s_shape)} differ beyond the channel axis; "
                    "pick layers with the same spatial size (after the same number of poolings)"
                )
            if loss.projection == "always" or (loss.projection == "auto" and t_shape[-1] != s_shape[-1]):
                layer = keras.layers.Dense(int(t_shape[-1]), use_bias=False, name=f"projection_{i}")
                layer.build(tuple(s_shape))
                loss.projection_layer = layer
                projections.append(layer)
            elif t_shape[-1] != s_shape[-1]:
                raise DistillationError(
                    f"feature distillation {loss.teacher_layer_name!r} -> {loss.student_layer_name!r}: widths "
                    f"{t_shape[-1]} and {s_shape[-1]} differ and projection='none'; use projection='auto'"
                )
        return projections

    @staticmethod
    def _feature_shape(model, layer_name):
        if layer_name is None:
            return tuple(model.outputs[0].shape)
        return tuple(model.get_layer(layer_name).output.shape)

    @property
    def layers(self):
        # The feature extractors are views of the teacher and student; leaving
        # them out keeps callbacks (UpdatePruningStep) from seeing each wrapper twice.
        return [l for l in super().layers if l is not self._teacher_feature_extractor and l is not self._student_feature_extractor]

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
        config["distillation_losses"] = [keras.saving.deserialize_keras_object(l) for l in config["distillation_losses"]]
        return cls(**config)

    def get_student(self, strip: bool = True):
        """The trained student; with ``strip=True`` its pruning wrappers are removed.

        A QAT student keeps its fake-quant layers: :func:`~keras_compress.convert.to_tflite`
        converts it to int8 with its learned ranges (no calibration data).
        """
        return strip_student(self.student) if strip else self.student


def strip_student(model):
    """``model`` with pruning wrappers removed (zeros kept), or ``model`` itself if it has none."""
    if not _collect_prune_wrappers(model):
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
    student has pruning wrappers and no such callback was given.

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
    if _collect_prune_wrappers(student):
        from keras_compress.pruning import UpdatePruningStep

        if not any(isinstance(c, UpdatePruningStep) for c in callbacks):
            callbacks.append(UpdatePruningStep())
    d.fit(x, y, epochs=epochs, batch_size=None if y is None else batch_size, callbacks=callbacks,
          validation_data=validation_data, verbose=verbose)
    return d.get_student(strip=strip)


def scratch_and_distilled(
    teacher,
    make_student,
    x,
    y,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    temperature: float = 4.0,
    alpha: float = 0.5,
    standardize: bool = True,
    seed: int = 0,
    verbose: int = 0,
) -> dict:
    """The same student trained twice from the same initial weights: on labels, and distilled.

    What a "distillation helps" comparison (the demo's rows, the bench) needs:
    both runs start from identical weights and see the batches in the same
    order, so the difference is the teacher's soft targets alone.

    Args:
        teacher: trained teacher (logits or softmax output).
        make_student: ``make_student(name) -> keras.Model``, a fresh untrained student.
        x, y: training images and integer labels.
        epochs, batch_size, learning_rate: the same for both runs (Adam).
        temperature, alpha, standardize: distillation settings (see
            :class:`LogitsDistillation`; ``alpha`` weighs the label loss).
        seed: seeds the initial weights and the batch order of both runs.
        verbose: ``fit`` verbosity.

    Returns:
        ``{"student_scratch": model, "student_distilled": model}``, plain Keras
        models ready for :func:`keras_compress.convert.to_tflite`.

    Example:
        >>> models = scratch_and_distilled(teacher, lambda n: build_model("cnn", (32, 32, 1), 10, 0.25, name=n),
        ...                                x_train, y_train, epochs=8)                      # doctest: +SKIP
        >>> blob = to_tflite(models["student_distilled"], representative_data=x_train[:200])  # doctest: +SKIP
    """
    keras.utils.set_random_seed(seed)
    scratch = make_student("student_scratch")
    keras.utils.set_random_seed(seed)
    student = make_student("student_distilled")
    student.set_weights(scratch.get_weights())

    scratch.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(scratch)),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(seed + 1)
    scratch.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)

    d = Distiller(teacher, student, LogitsDistillation(temperature, standardize=standardize), student_loss_weight=alpha)
    d.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
    keras.utils.set_random_seed(seed + 1)
    d.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
    return {"student_scratch": scratch, "student_distilled": d.get_student()}
