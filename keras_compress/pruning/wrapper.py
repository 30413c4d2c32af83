"""`PruneLowMagnitude`: the Keras 3 layer wrapper that holds the pruning state.

For each prunable weight of the wrapped layer it adds a non-trainable ``mask``
(same shape, ones at first) and ``threshold`` (scalar), plus one int64
``pruning_step``. In the forward pass the wrapped layer sees ``weight * mask``
(through ``keras.StatelessScope``), so pruned weights get no gradient and no
TensorFlow variable is assigned inside the training step: this is what keeps
the per-step cost to one multiply per pruned kernel and makes the wrapper work
unchanged under ``tf.distribute`` strategies. The masks themselves are
recomputed eagerly, outside the training step, by :class:`UpdatePruningStep`
on the steps the schedule selects; the kernel is then also overwritten with
``kernel * mask`` so checkpoints hold the zeros.

Which weights are pruned is decided by :mod:`keras_compress.pruning.registry`
(tfmot's registry: exact layer classes, ``get_prunable_weights()`` for custom
layers). A layer with nothing to prune (Dropout, BatchNormalization, a
DepthwiseConv2D by default, ...) can be wrapped too: its wrapper has no mask,
as in tfmot.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass

import keras
from keras import ops

from keras_compress.errors import PruningError
from keras_compress.pruning import masks as _masks
from keras_compress.pruning import registry as _registry
from keras_compress.pruning import schedules as _schedules

__all__ = [
    "PruneLowMagnitude",
    "collect_prunable_layers",
    "collect_wrappers",
    "is_prunable",
    "prunable_weight_spec",
]

_PACKAGE = "keras_compress.pruning"


@dataclass(frozen=True)
class _Pruned:
    """One pruned weight and its state (a plain object: Keras does not track it twice)."""

    weight: object
    mask: object
    threshold: object
    axis: int | None


def prunable_weight_spec(layer, prune_depthwise: bool = False):
    """Returns ``(weight attribute names, m-by-n axis)`` for ``layer``, or None.

    Kept for the per-layer report of plain models: a layer defining
    ``get_prunable_weights()`` returns ``("*", 0)``; layers whose weights are
    not plain attributes (RNN cells, MultiHeadAttention) and layers with
    nothing to prune return None. Use
    :func:`keras_compress.pruning.registry.get_prunable_weights` for the
    weights themselves.
    """
    if isinstance(layer, PruneLowMagnitude) or _registry.support(layer, prune_depthwise).kind != "prune":
        return None
    if callable(getattr(layer, "get_prunable_weights", None)):
        return ("*",), 0
    names = _registry.attribute_names(layer, prune_depthwise)
    return (names, None) if names else None


def is_prunable(layer, prune_depthwise: bool = False) -> bool:
    """True if :func:`prune_low_magnitude` finds weights to prune in ``layer``."""
    if isinstance(layer, (PruneLowMagnitude, keras.Model)):
        return False
    return _registry.support(layer, prune_depthwise).kind == "prune"


def collect_wrappers(model) -> list:
    """All :class:`PruneLowMagnitude` layers of ``model``, nested models included."""
    if isinstance(model, PruneLowMagnitude):
        return [model]
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, PruneLowMagnitude):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(collect_wrappers(layer))
    return found


collect_prunable_layers = collect_wrappers  # tfmot's name


def _check_options(block_size, block_pooling_type, sparsity_m_by_n):
    block_size = _two_ints("block_size", block_size, minimum=1)
    if block_pooling_type not in ("AVG", "MAX"):
        raise PruningError(
            f"block_pooling_type must be 'AVG' or 'MAX', got {block_pooling_type!r}"
        )
    if sparsity_m_by_n is not None:
        sparsity_m_by_n = _two_ints("sparsity_m_by_n", sparsity_m_by_n, minimum=1)
        if sparsity_m_by_n[0] >= sparsity_m_by_n[1]:
            raise PruningError(
                f"sparsity_m_by_n (m zeros in every n) needs m < n, got {sparsity_m_by_n}"
            )
        if block_size != (1, 1):
            raise PruningError(
                f"give either block_size or sparsity_m_by_n, got block_size={block_size} "
                f"and sparsity_m_by_n={sparsity_m_by_n}"
            )
    return block_size, sparsity_m_by_n


def _takes(fn, name: str) -> bool:
    """True if ``fn`` has a parameter ``name`` (as tfmot: ``**kwargs`` does not count)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer so that its kernel is magnitude-pruned during training.

    Usually created by :func:`prune_low_magnitude`, and trained with the
    :class:`UpdatePruningStep` callback, which updates the masks.

    Args:
        layer: The layer to prune (see :mod:`keras_compress.pruning.registry`).
            A layer with nothing to prune (Dropout, BatchNormalization, ...)
            gets a wrapper without masks, as in tfmot.
        pruning_schedule: A :class:`PruningSchedule` (or its config).
        block_size: ``(height, width)`` blocks pruned together, for weights that
            are 2-D after squeezing (Dense kernels, 1x1 convolutions).
        block_pooling_type: ``"AVG"`` or ``"MAX"``: how a block's magnitude is pooled.
        sparsity_m_by_n: ``(m, n)``: ``m`` zeros in every ``n`` consecutive
            input channels (e.g. ``(2, 4)``), instead of the schedule's sparsity
            (the schedule still says when the masks are updated). Applies to
            rank-2 and rank-4 weights; others keep a mask of ones.
        prune_depthwise: Also prune DepthwiseConv kernels (tfmot never does).
        **kwargs: Passed to ``keras.layers.Wrapper`` (``name``, ``input_shape``, ...).

    Raises:
        PruningError: (a ``ValueError``) the layer cannot be pruned, or an
            argument is invalid; the message names the layer or the value.

    Example:
        >>> import keras
        >>> from keras_compress.pruning import PruneLowMagnitude, ConstantSparsity
        >>> layer = PruneLowMagnitude(keras.layers.Dense(4), ConstantSparsity(0.5, 0))
        >>> layer.build((None, 8))
        >>> [v.path.split("/")[-1] for v in layer.non_trainable_weights]
        ['kernel_mask', 'kernel_threshold', 'pruning_step']
    """

    _CALLBACK_ERROR = (
        "layer '{name}' is being trained without the UpdatePruningStep callback: add "
        "keras_compress.pruning.UpdatePruningStep() to model.fit(callbacks=[...]) (in a custom "
        "loop, call its set_model, on_train_begin and on_train_batch_begin yourself)"
    )

    def __init__(
        self,
        layer,
        pruning_schedule=None,
        block_size=(1, 1),
        block_pooling_type="AVG",
        sparsity_m_by_n=None,
        prune_depthwise=False,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
            raise PruningError(
                f"PruneLowMagnitude needs a keras.layers.Layer instance, got {layer!r}"
            )
        if isinstance(layer, PruneLowMagnitude):
            raise PruningError(f"layer '{layer.name}' is already wrapped by PruneLowMagnitude")
        verdict = _registry.support(layer, bool(prune_depthwise))
        if verdict.kind == "unsupported":
            raise PruningError(_registry.unsupported_message(layer, verdict.reason))
        block_size, sparsity_m_by_n = _check_options(block_size, block_pooling_type, sparsity_m_by_n)
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        # A first Sequential layer built with `Dense(10, input_shape=(5,))` keeps
        # its input shape: Keras reads it from this private attribute (Sequential.add
        # does the same; there is no public accessor).
        input_shape = getattr(layer, "_input_shape_arg", None)
        if input_shape is not None and "input_shape" not in kwargs and "input_dim" not in kwargs:
            kwargs["input_shape"] = input_shape
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
            super().__init__(layer, **kwargs)
        self.pruning_schedule = _schedules.get(
            pruning_schedule if pruning_schedule is not None else _schedules.ConstantSparsity(0.5, 0)
        )
        self.block_size = block_size
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = sparsity_m_by_n
        self.prune_depthwise = bool(prune_depthwise)
        self._pruned = []  # _Pruned entries, one per masked weight
        # The masks and thresholds also as attributes, so that TensorFlow's
        # object graph (tf.saved_model.save, checkpoints) reaches them.
        self._mask_variables = []
        self._threshold_variables = []
        self.callback_attached = False
        self._layer_takes_training = _takes(layer.call, "training")
        self.supports_masking = getattr(layer, "supports_masking", False)

    # ----------------------------------------------------------------- weights
    def get_prunable_weights(self) -> list:
        """The wrapped layer's variables that are pruned (tfmot's ``get_prunable_weights``)."""
        if self.built:
            return [p.weight for p in self._pruned]
        if not self.layer.built:
            return []
        return _registry.get_prunable_weights(self.layer, self.prune_depthwise)

    prunable_weights = get_prunable_weights

    @property
    def pruning_vars(self) -> list:
        """``[(weight, mask, threshold), ...]`` as tfmot's wrapper exposes them."""
        return [(p.weight, p.mask, p.threshold) for p in self._pruned]

    @property
    def weights(self) -> list:
        """The wrapped layer's weights, then the wrapper's (masks, thresholds, step), as tfmot.

        That order is what tfmot's ``.h5`` files hold, so they load here.
        """
        inner = self.layer.weights
        seen = {id(w) for w in inner}
        return inner + [w for w in super().weights if id(w) not in seen]

    @property
    def masks(self) -> list:
        return [p.mask for p in self._pruned]

    @property
    def thresholds(self) -> list:
        return [p.threshold for p in self._pruned]

    def __call__(self, *args, **kwargs):
        if not self.built and not self.layer.built and _required_shapes(self.layer.build) > 1:
            self._build_inner_from_call(args, kwargs)
        return super().__call__(*args, **kwargs)

    def _build_inner_from_call(self, args, kwargs):
        """Builds a layer whose build() needs several shapes (MultiHeadAttention)."""
        bound = inspect.signature(self.layer.call).bind_partial(*args, **kwargs).arguments
        shapes = {f"{k}_shape": tuple(v.shape) for k, v in bound.items() if hasattr(v, "shape")}
        params = inspect.signature(self.layer.build).parameters
        self.layer.build(**{p: shapes[p] for p in params if p in shapes})

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        weights = _registry.get_prunable_weights(self.layer, self.prune_depthwise)
        for w in weights:
            axis = _registry.m_by_n_axis(self.layer, w)
            if self.sparsity_m_by_n is not None and axis is None:
                warnings.warn(
                    f"layer '{self.layer.name}': sparsity_m_by_n {self.sparsity_m_by_n} applies to "
                    f"rank-2 and rank-4 weights; '{w.path}' {tuple(w.shape)} is left dense",
                    stacklevel=2,
                )
                continue
            if self.block_size != (1, 1) and len([d for d in w.shape if d != 1]) != 2:
                raise PruningError(
                    f"layer '{self.layer.name}': block_size {self.block_size} needs a weight "
                    f"that is 2-D after squeezing, got '{w.path}' with shape {tuple(w.shape)}"
                )
            short = w.path.split("/")[-1]
            mask = self.add_weight(
                name=f"{short}_mask", shape=tuple(w.shape), initializer="ones",
                dtype=w.dtype, trainable=False,
            )
            threshold = self.add_weight(
                name=f"{short}_threshold", shape=(), initializer="zeros",
                dtype=w.dtype, trainable=False,
            )
            self._pruned.append(_Pruned(w, mask, threshold, axis))
            self._mask_variables.append(mask)
            self._threshold_variables.append(threshold)
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int64",
            trainable=False,
        )
        self.built = True

    # ------------------------------------------------------------------ forward
    def call(self, inputs, *args, training=None, **kwargs):
        if training is True and not self.callback_attached:
            raise PruningError(self._CALLBACK_ERROR.format(name=self.name))
        if self._layer_takes_training:
            kwargs["training"] = training
        if not self._pruned:
            return self.layer.call(inputs, *args, **kwargs)
        pruned = {id(p.weight): p.mask for p in self._pruned}
        # Map every variable of the wrapped layer to its current value (so an
        # enclosing stateless scope is respected), the pruned ones times their mask.
        mapping = []
        for v in self.layer.variables:
            if id(v) in pruned:
                mapping.append((v, ops.multiply(v, pruned[id(v)])))
            else:
                mapping.append((v, ops.convert_to_tensor(v)))
        with keras.StatelessScope(state_mapping=mapping):
            return self.layer.call(inputs, *args, **kwargs)

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        kwargs.pop("training", None)
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    # ------------------------------------------------------------ mask updates
    def update_masks(self, step: int, sparsity: float) -> None:
        """Recomputes the masks for ``sparsity`` and zeroes the pruned weights (eager)."""
        for p in self._pruned:
            w, mask, threshold = p.weight, p.mask, p.threshold
            effective = ops.multiply(w, mask)
            if self.sparsity_m_by_n is not None:
                new_mask = _masks.m_by_n_mask(effective, self.sparsity_m_by_n, p.axis)
                new_threshold = ops.min(ops.abs(effective) + (1.0 - new_mask) * 3.0e38)
            else:
                new_mask, new_threshold = _masks.block_mask(
                    effective, sparsity, self.block_size, self.block_pooling_type
                )
            mask.assign(ops.cast(new_mask, mask.dtype))
            threshold.assign(ops.cast(new_threshold, threshold.dtype))
            w.assign(ops.multiply(effective, ops.cast(new_mask, w.dtype)))
        self.pruning_step.assign(step)

    def apply_masks(self) -> None:
        """Writes ``weight * mask`` into the wrapped layer's weights (eager; no-op if unbuilt)."""
        for p in self._pruned:
            p.weight.assign(ops.multiply(p.weight, ops.cast(p.mask, p.weight.dtype)))

    # ------------------------------------------------------------ serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule),
                "block_size": list(self.block_size),
                "block_pooling_type": self.block_pooling_type,
                "sparsity_m_by_n": (
                    list(self.sparsity_m_by_n) if self.sparsity_m_by_n is not None else None
                ),
                "prune_depthwise": self.prune_depthwise,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = _deserialize_layer(config["layer"], custom_objects)
        config["pruning_schedule"] = _schedules.get(config["pruning_schedule"])
        return cls(**config)


def _deserialize_layer(layer_config, custom_objects=None):
    try:
        return keras.saving.deserialize_keras_object(layer_config, custom_objects=custom_objects)
    except (TypeError, ValueError) as error:
        legacy = _tf_keras_fixups(layer_config)
        if legacy is None:
            raise
        try:
            return keras.legacy.saving.deserialize_keras_object(
                legacy, module_objects=vars(keras.layers), custom_objects=custom_objects
            )
        except Exception:  # noqa: BLE001 - report the first error, not the fallback's
            raise error from None


def _tf_keras_fixups(layer_config):
    """A tf_keras layer config (a model saved by tfmot as .h5) with the fix-ups Keras 3's
    legacy H5 loader applies to top-level layers; None if there is nothing to fix."""
    inner = dict(layer_config.get("config", {})) if isinstance(layer_config, dict) else {}
    fixed = inner.pop("batch_input_shape", None) is not None  # the wrapper carries the shape
    if isinstance(inner.get("axis"), list) and len(inner["axis"]) == 1:
        inner["axis"], fixed = int(inner["axis"][0]), True
    return {**layer_config, "config": inner} if fixed else None


def _required_shapes(build) -> int:
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD)


def _two_ints(name: str, value, minimum: int) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise PruningError(f"{name} must be a pair of ints, got {value!r}") from None
    for v in (a, b):
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise PruningError(f"{name} must be a pair of ints >= {minimum}, got {value!r}")
    return (int(a), int(b))
