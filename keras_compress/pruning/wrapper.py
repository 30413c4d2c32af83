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

Which weights are pruned (same choices as tfmot's prune registry):

=====================================  ==========================  ===========
layer                                  pruned weight               m-by-n axis
=====================================  ==========================  ===========
Dense                                  kernel                      inputs (0)
Conv1D / Conv2D / Conv3D               kernel                      in-channels
Conv1DTranspose / Conv2DTranspose      kernel                      in-channels
DepthwiseConv1D / DepthwiseConv2D      kernel (depthwise)          not allowed
SeparableConv1D / SeparableConv2D      pointwise_kernel only       in-channels
Embedding                              embeddings                  features
any layer with get_prunable_weights()  the weights it returns      last-but-one
=====================================  ==========================  ===========

SeparableConv keeps its depthwise kernel dense: it holds a few percent of the
layer's weights (``k*k*C`` against ``C*F``), and pruning it removes whole
spatial taps of a channel, which costs much more accuracy than it saves.
"""

from __future__ import annotations

import inspect

import keras
from keras import ops

from keras_compress.errors import PruningError
from keras_compress.pruning import masks as _masks
from keras_compress.pruning import schedules as _schedules

__all__ = ["PruneLowMagnitude", "prunable_weight_spec", "is_prunable", "collect_wrappers"]

_PACKAGE = "keras_compress.pruning"

_L = keras.layers

# (layer classes, weight attribute names, m-by-n input axis or None). First match wins.
_REGISTRY = (
    ((_L.SeparableConv1D, _L.SeparableConv2D), ("pointwise_kernel",), -2),
    ((_L.DepthwiseConv1D, _L.DepthwiseConv2D), ("kernel",), None),
    ((_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose), ("kernel",), -1),
    ((_L.Conv1D, _L.Conv2D, _L.Conv3D), ("kernel",), -2),
    ((_L.Dense,), ("kernel",), 0),
    ((_L.Embedding,), ("embeddings",), -1),
)

SUPPORTED_LAYERS = tuple(cls.__name__ for group in _REGISTRY for cls in group[0])


def prunable_weight_spec(layer):
    """Returns ``(weight attribute names, m-by-n axis)`` for ``layer``, or None.

    A layer defining ``get_prunable_weights()`` returns ``("*", -2)``.
    """
    if hasattr(layer, "get_prunable_weights"):
        return ("*",), -2
    for classes, names, axis in _REGISTRY:
        if isinstance(layer, classes):
            if getattr(layer, "lora_enabled", False):
                return None
            if getattr(layer, "quantization_mode", None):
                return None
            return names, axis
    return None


def is_prunable(layer) -> bool:
    """True if :func:`prune_low_magnitude` can wrap ``layer``."""
    return not isinstance(layer, PruneLowMagnitude) and prunable_weight_spec(layer) is not None


def _unprunable_message(layer) -> str:
    reason = ""
    if getattr(layer, "lora_enabled", False):
        reason = " (LoRA is enabled on it)"
    elif getattr(layer, "quantization_mode", None):
        reason = f" (it is quantized: {layer.quantization_mode})"
    return (
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be pruned{reason}: expected one "
        f"of {', '.join(SUPPORTED_LAYERS)} or a layer with get_prunable_weights()"
    )


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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer so that its kernel is magnitude-pruned during training.

    Usually created by :func:`prune_low_magnitude`, and trained with the
    :class:`UpdatePruningStep` callback, which updates the masks.

    Args:
        layer: The layer to prune (see the table in the module docstring).
        pruning_schedule: A :class:`PruningSchedule` (or its config).
        block_size: ``(height, width)`` blocks pruned together, for weights that
            are 2-D after squeezing (Dense kernels, 1x1 convolutions).
        block_pooling_type: ``"AVG"`` or ``"MAX"``: how a block's magnitude is pooled.
        sparsity_m_by_n: ``(m, n)``: ``m`` zeros in every ``n`` consecutive
            input channels (e.g. ``(2, 4)``), instead of the schedule's sparsity
            (the schedule still says when the masks are updated).
        **kwargs: Passed to ``keras.layers.Wrapper`` (``name``, ...).

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
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise PruningError(
                f"PruneLowMagnitude needs a keras.layers.Layer instance, got {layer!r}"
            )
        if isinstance(layer, PruneLowMagnitude):
            raise PruningError(f"layer '{layer.name}' is already wrapped by PruneLowMagnitude")
        spec = prunable_weight_spec(layer)
        if spec is None:
            raise PruningError(_unprunable_message(layer))
        if pruning_schedule is None:
            pruning_schedule = _schedules.ConstantSparsity(0.5, 0)
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
            if spec[1] is None:
                raise PruningError(
                    f"layer '{layer.name}' ({type(layer).__name__}): sparsity_m_by_n needs an "
                    "input-channel axis; a depthwise kernel has none (use a sparsity schedule)"
                )
            if block_size != (1, 1):
                raise PruningError(
                    f"give either block_size or sparsity_m_by_n, got block_size={block_size} "
                    f"and sparsity_m_by_n={sparsity_m_by_n}"
                )
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = _schedules.get(pruning_schedule)
        self.block_size = block_size
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = sparsity_m_by_n
        self._weight_names, self._m_by_n_axis = spec
        self._masks = []
        self._thresholds = []
        self.callback_attached = False
        try:
            params = inspect.signature(layer.call).parameters
            self._layer_takes_training = "training" in params
        except (TypeError, ValueError):
            self._layer_takes_training = False
        self.supports_masking = getattr(layer, "supports_masking", False)

    # ----------------------------------------------------------------- weights
    def prunable_weights(self) -> list:
        """The wrapped layer's variables that are pruned (not tracked by the wrapper)."""
        if self._weight_names == ("*",):
            return list(self.layer.get_prunable_weights())
        return [getattr(self.layer, name) for name in self._weight_names]

    @property
    def masks(self) -> list:
        return list(self._masks)

    @property
    def thresholds(self) -> list:
        return list(self._thresholds)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        weights = self.prunable_weights()
        if self.block_size != (1, 1):
            for w in weights:
                if len([d for d in w.shape if d != 1]) != 2:
                    raise PruningError(
                        f"layer '{self.layer.name}': block_size {self.block_size} needs a weight "
                        f"that is 2-D after squeezing, got '{w.path}' with shape {tuple(w.shape)}"
                    )
        for w in weights:
            short = w.path.split("/")[-1]
            self._masks.append(
                self.add_weight(
                    name=f"{short}_mask",
                    shape=tuple(w.shape),
                    initializer="ones",
                    dtype=w.dtype,
                    trainable=False,
                )
            )
            self._thresholds.append(
                self.add_weight(
                    name=f"{short}_threshold",
                    shape=(),
                    initializer="zeros",
                    dtype=w.dtype,
                    trainable=False,
                )
            )
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int64",
            trainable=False,
        )
        self.built = True

    # ------------------------------------------------------------------ forward
    def call(self, inputs, training=None, **kwargs):
        if training is True and not self.callback_attached:
            raise PruningError(self._CALLBACK_ERROR.format(name=self.name))
        pruned = {id(w): (w, m) for w, m in zip(self.prunable_weights(), self._masks)}
        # Map every variable of the wrapped layer to its current value (so an
        # enclosing stateless scope is respected), the pruned ones times their mask.
        mapping = []
        for v in self.layer.variables:
            if id(v) in pruned:
                mapping.append((v, ops.multiply(v, pruned[id(v)][1])))
            else:
                mapping.append((v, ops.convert_to_tensor(v)))
        if self._layer_takes_training:
            kwargs["training"] = training
        with keras.StatelessScope(state_mapping=mapping):
            return self.layer.call(inputs, **kwargs)

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
        for w, mask, threshold in zip(self.prunable_weights(), self._masks, self._thresholds):
            effective = ops.multiply(w, mask)
            if self.sparsity_m_by_n is not None:
                new_mask = _masks.m_by_n_mask(effective, self.sparsity_m_by_n, self._m_by_n_axis)
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
        """Writes ``weight * mask`` into the wrapped layer's weights (eager)."""
        for w, mask in zip(self.prunable_weights(), self._masks):
            w.assign(ops.multiply(w, ops.cast(mask, w.dtype)))

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
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(
            config["layer"], custom_objects=custom_objects
        )
        config["pruning_schedule"] = _schedules.get(config["pruning_schedule"])
        return cls(**config)


def _two_ints(name: str, value, minimum: int) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise PruningError(f"{name} must be a pair of ints, got {value!r}") from None
    for v in (a, b):
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise PruningError(f"{name} must be a pair of ints >= {minimum}, got {value!r}")
    return (int(a), int(b))
