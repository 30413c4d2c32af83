"""Distillation losses: Hinton logits distillation (standardized by default) and feature distillation.

Both subclass Keras's own (``keras.distillation.LogitsDistillation`` /
``FeatureDistillation``) and are computed with ``keras.tree``, so a model
with several outputs (a list or dict of logits) needs no special case: the
loss is applied to each output pair and the terms are summed, as Keras does.

Example:
    >>> import numpy as np
    >>> from keras_compress.distillation.losses import LogitsDistillation
    >>> t = np.array([[2.0, 0.0, -2.0]], "float32")
    >>> round(float(LogitsDistillation(4.0).compute_loss(t, t)), 6)
    0.0
    >>> two = LogitsDistillation(4.0).compute_loss([t, t], [t, t[:, ::-1]])   # two outputs: summed
    >>> round(float(two), 3) == round(float(LogitsDistillation(4.0).compute_loss(t, t[:, ::-1])), 3)
    True
"""

from __future__ import annotations

import keras
from keras import ops

from keras_compress.errors import DistillationError

__all__ = ["LogitsDistillation", "FeatureDistillation", "outputs_probabilities", "inner_layer", "PROJECTIONS"]

_PACKAGE = "keras_compress.distillation"  # the registered names of saved models: keep it
_EPS = 1e-12
#: Values of :class:`FeatureDistillation`'s ``projection``.
PROJECTIONS = ("auto", "always", "none")


def _is_kl(loss) -> bool:
    return (
        loss is keras.losses.kl_divergence
        or isinstance(loss, keras.losses.KLDivergence)
        or getattr(loss, "__name__", None) in ("kl_divergence", "kld", "KLD")
    )


def inner_layer(layer):
    """The layer a pruning / QAT / other ``keras.layers.Wrapper`` holds (recursively), else the layer."""
    for _ in range(8):
        inner = getattr(layer, "layer", None)
        if not isinstance(inner, keras.layers.Layer):
            break
        layer = inner
    return layer


def _zscore(logits):
    mean = ops.mean(logits, axis=-1, keepdims=True)
    std = ops.std(logits, axis=-1, keepdims=True)
    return (logits - mean) / (std + 1e-6)


def _ends_in_softmax(layer) -> bool:
    last = inner_layer(layer)
    if isinstance(last, keras.Model):
        return outputs_probabilities(last)
    if isinstance(last, keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    if isinstance(act, keras.layers.Layer):
        return isinstance(act, keras.layers.Softmax)
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def outputs_probabilities(model) -> bool:
    """True when ``model``'s output layers end with a softmax (it outputs probabilities).

    Wrappers (pruning, QAT) are looked through. A model with several outputs
    must be consistent: all probabilities or all logits.

    Raises:
        DistillationError: some outputs are probabilities and others logits.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        >>> outputs_probabilities(m)
        True
    """
    layers = getattr(model, "layers", None)
    if not layers:
        return False
    names = getattr(model, "output_names", None) or []
    outs = [model.get_layer(n) for n in names if n in {layer.name for layer in layers}] or [layers[-1]]
    kinds = {_ends_in_softmax(layer) for layer in outs}
    if len(kinds) > 1:
        raise DistillationError(
            f"model {model.name!r}: outputs {', '.join(l.name for l in outs)} mix probabilities and logits; "
            "set teacher_from_logits / student_from_logits of LogitsDistillation yourself"
        )
    return kinds.pop()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogitsDistillation(keras.distillation.LogitsDistillation):
    """Hinton logits distillation on standardized logits, for models with logits *or* softmax outputs.

    ``T**2 * KL(softmax(t / T) || softmax(s / T))`` per output (Hinton et al.,
    2015), summed over a model's outputs. Before the temperature, each
    sample's logits are z-scored (``standardize``, the default; "Logit
    Standardization in Knowledge Distillation", Sun et al., CVPR 2024): the
    student then matches the teacher's *relative* logits, not their scale. On
    load_shapes, plain Hinton distillation from a teacher with large logits
    left the student below one trained from scratch; standardized, it gained
    about 6 points (bench/bench_distillation.py).

    A model ending in a softmax is handled by taking ``log(p)``, which equals
    the logits up to a per-sample constant that the softmax cancels;
    :class:`~keras_compress.distillation.Distiller` sets the two flags from the
    models when they are left to ``None``. (Keras 3.15's own class, with its
    default ``"kl_divergence"``, skips the softmax: it gets the plain function,
    not the ``KLDivergence`` class; this one computes Hinton's term itself.)

    Args:
        temperature: softening temperature ``T`` (> 0); 2-8 is usual.
        loss: loss between the softened distributions (default KL divergence,
            scaled by ``T**2``), or one loss per output (``None`` skips an output).
        teacher_from_logits: whether the teacher outputs logits (``None``: detect).
        student_from_logits: whether the student outputs logits (``None``: detect).
        standardize: z-score each sample's logits before the temperature (default True).

    Example:
        >>> import numpy as np
        >>> t = np.array([[2.0, 0.0, -2.0]], "float32")
        >>> round(float(LogitsDistillation(1.0, standardize=False).compute_loss(t, t[:, ::-1])), 3)  # KL(p || reversed p)
        3.404
    """

    def __init__(
        self, temperature=4.0, loss="kl_divergence", teacher_from_logits=None, student_from_logits=None, standardize=True
    ):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise DistillationError(f"temperature: expected a number > 0, got {temperature!r}")
        super().__init__(temperature=float(temperature), loss=loss)
        self.teacher_from_logits = teacher_from_logits
        self.student_from_logits = student_from_logits
        self.standardize = bool(standardize)

    def _logits(self, outputs, from_logits):
        if from_logits is False:
            outputs = ops.log(ops.clip(outputs, _EPS, 1.0))
        return _zscore(outputs) if self.standardize else outputs

    def _term(self, loss_fn, teacher, student):
        if loss_fn is None:
            return 0.0
        t = ops.divide(self._logits(teacher, self.teacher_from_logits), self.temperature)
        s = ops.divide(self._logits(student, self.student_from_logits), self.temperature)
        if _is_kl(loss_fn):
            t, s = ops.log_softmax(t, axis=-1), ops.log_softmax(s, axis=-1)
            return ops.mean(ops.sum(ops.exp(t) * (t - s), axis=-1)) * (self.temperature**2)
        return ops.mean(loss_fn(t, s))

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The summed distillation term over every output pair."""
        losses = self.loss
        if not keras.tree.is_nested(losses):  # one loss for every output
            losses = keras.tree.map_structure(lambda _: self.loss, teacher_outputs)
        terms = keras.tree.map_structure(self._term, losses, teacher_outputs, student_outputs)
        return ops.sum(ops.stack([ops.convert_to_tensor(x, "float32") for x in keras.tree.flatten(terms)]))

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureDistillation(keras.distillation.FeatureDistillation):
    """Feature (hint) distillation between two named layers, with a learned projection.

    The student's feature map goes through a bias-free ``Dense`` on its last
    (channel) axis, mapping its width to the teacher's, before the loss. The
    projection belongs to the :class:`~keras_compress.distillation.Distiller`
    (so the optimizer trains it and a saved distiller keeps it) and is not part
    of the student you get back. Spatial sizes must match (pick layers after
    the same number of poolings).

    Args:
        teacher_layer_name: name of the teacher layer whose output is the target.
        student_layer_name: name of the student layer (wrappers are looked
            through: ``"conv3"`` finds ``prune_low_magnitude_conv3``).
        loss: loss between the features (default ``"mse"``).
        projection: ``"auto"`` (only when the widths differ), ``"always"`` or ``"none"``.

    Example:
        >>> f = FeatureDistillation("conv3", "conv3")
        >>> f.projection
        'auto'
    """

    def __init__(self, teacher_layer_name=None, student_layer_name=None, loss="mse", projection="auto"):
        if projection not in PROJECTIONS:
            raise DistillationError(f"projection: expected one of {', '.join(map(repr, PROJECTIONS))}, got {projection!r}")
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

