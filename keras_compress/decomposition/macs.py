"""Multiply-accumulates (MACs) and parameters of layers, before and after factorization.

Counts the multiply-accumulates of the matrix-product layers (Dense, Conv,
DepthwiseConv, SeparableConv, ConvTranspose) for one input example; other
layers (BatchNormalization, pooling, activations, Add) count 0. Shapes come
from the built model, so spatial sizes must be fixed.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, padding="same", name="c"),
    ...                       keras.layers.Flatten(), keras.layers.Dense(10, name="d")])
    >>> layer_macs(m.get_layer("c")), model_macs(m)
    (27648, 37888)
    >>> g = Geometry.of(m.get_layer("c"))
    >>> g.macs("channel", 4), g.macs("spatial", 4), g.max_rank("spatial")
    (11008, 14592, 9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from keras_compress.errors import DecompositionError

__all__ = ["FACTORIZABLE", "Geometry", "layer_macs", "model_macs"]

_L = keras.layers

#: Layer classes `decompose` can factorize (exact classes: subclasses may compute something else).
FACTORIZABLE = (_L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D)


def _shape(layer, which: str) -> tuple:
    try:
        tensor = getattr(layer, which)
    except (AttributeError, ValueError) as e:  # not built, or called at several places
        raise DecompositionError(f"layer '{layer.name}': cannot read its {which} shape ({e})") from None
    shape = tuple(tensor.shape)
    if any(d is None for d in shape[1:]):
        raise DecompositionError(
            f"layer '{layer.name}': {which} shape {shape} has unknown dimensions; MACs need a model "
            "built for a fixed input size"
        )
    return shape


def _spatial(layer, shape: tuple) -> tuple:
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return shape[2:]
    return shape[1:-1]


@dataclass(frozen=True)
class Geometry:
    """What the MAC and parameter counts of a Dense or Conv layer depend on.

    Attributes:
        kind: ``"dense"`` or ``"conv"``.
        kernel_shape: ``(n_in, n_out)`` or ``(*kernel_size, C_in, C_out)``.
        in_spatial: positions of the input (Dense: the leading non-batch dims).
        out_spatial: positions of the output.
        bias: whether the layer has a bias.
    """

    kind: str
    kernel_shape: tuple
    in_spatial: tuple
    out_spatial: tuple
    bias: bool

    @classmethod
    def of(cls, layer) -> Geometry:
        """The geometry of a built Dense / Conv1D / Conv2D / Conv3D layer."""
        kernel = tuple(int(d) for d in layer.kernel.shape)
        if isinstance(layer, _L.Dense):
            positions = _shape(layer, "input")[1:-1]
            return cls("dense", kernel, positions, positions, bool(layer.use_bias))
        ins, outs = _shape(layer, "input"), _shape(layer, "output")
        return cls("conv", kernel, _spatial(layer, ins), _spatial(layer, outs), bool(layer.use_bias))

    @property
    def c_in(self) -> int:
        return self.kernel_shape[-2]

    @property
    def c_out(self) -> int:
        return self.kernel_shape[-1]

    def methods(self) -> tuple[str, ...]:
        """Factorizations this layer admits: ``("svd",)`` for Dense, channel (and spatial for k x k 2-D)."""
        if self.kind == "dense":
            return ("svd",)
        k = self.kernel_shape[:-2]
        return ("channel", "spatial") if len(k) == 2 and min(k) > 1 else ("channel",)

    def max_rank(self, method: str) -> int:
        k = self.kernel_shape[:-2]
        if method == "spatial":
            return min(k[0] * self.c_in, k[1] * self.c_out)
        return min(math.prod(k) * self.c_in, self.c_out)

    @property
    def macs_before(self) -> int:
        return math.prod(self.out_spatial) * math.prod(self.kernel_shape)

    @property
    def params_before(self) -> int:
        return math.prod(self.kernel_shape) + (self.c_out if self.bias else 0)

    def macs(self, method: str, rank: int) -> int:
        """MACs of the two factor layers at ``rank``."""
        k = self.kernel_shape[:-2]
        if method == "spatial":
            # k_h x 1 conv keeps the input width (kernel width 1, stride 1); 1 x k_w conv gives the output.
            out_h, out_w = self.out_spatial
            mid = out_h * self.in_spatial[1]
            return mid * k[0] * self.c_in * rank + out_h * out_w * k[1] * rank * self.c_out
        return math.prod(self.out_spatial) * rank * (math.prod(k) * self.c_in + self.c_out)

    def params(self, method: str, rank: int) -> int:
        """Parameters of the two factor layers at ``rank`` (the bias stays on the second)."""
        k = self.kernel_shape[:-2]
        bias = self.c_out if self.bias else 0
        if method == "spatial":
            return rank * (k[0] * self.c_in + k[1] * self.c_out) + bias
        return rank * (math.prod(k) * self.c_in + self.c_out) + bias


def layer_macs(layer) -> int:
    """MACs of one layer for one example (0 for layers without a matrix product)."""
    if isinstance(layer, keras.Model):
        return model_macs(layer)
    if isinstance(layer, FACTORIZABLE):  # a grouped kernel is (*k, C_in / groups, C_out): same formula
        return Geometry.of(layer).macs_before
    if isinstance(layer, (_L.DepthwiseConv1D, _L.DepthwiseConv2D)):
        kernel = layer.kernel.shape  # (*k, C_in, multiplier)
        return math.prod(_spatial(layer, _shape(layer, "output"))) * math.prod(kernel)
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
        positions = math.prod(_spatial(layer, _shape(layer, "output")))
        return positions * (math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape))
    if isinstance(layer, (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)):
        return math.prod(_spatial(layer, _shape(layer, "input"))) * math.prod(layer.kernel.shape)
    return 0


def model_macs(model) -> int:
    """Sum of :func:`layer_macs` over every layer, nested models included."""
    return sum(layer_macs(layer) for layer in model.layers)
