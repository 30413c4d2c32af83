"""Low-rank decomposition of Dense and Conv layers (truncated SVD; channel and spatial).

Fewer multiply-accumulates with plain CONV_2D / FULLY_CONNECTED ops: a
factorized model is an ordinary Keras model that prunes, quantizes, distils and
converts like any other, and maps fully to the Edge TPU.

    decompose(model, *, rank|energy|ratio, layers=None, method="auto")  -> new model
    plan_decomposition(model, ...)       the per-layer decisions, as data (nothing built)
    decomposition_report(model, decomposed)   per layer: rank, params, MACs, energy
    model_macs(model), layer_macs(layer)      multiply-accumulates per example
    replace_layers(model, replace)            rebuild a model with layers swapped for chains

Example:
    >>> import keras
    >>> from keras_compress.decomposition import decompose, model_macs
    >>> model = keras.Sequential([keras.Input((16, 16, 16)),
    ...     keras.layers.Conv2D(32, 3, padding="same", name="conv"), keras.layers.BatchNormalization(name="bn"),
    ...     keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="fc")])
    >>> small = decompose(model, ratio=0.5, layers="conv")
    >>> [l.name for l in small.layers][:3], model_macs(small) < 0.55 * model_macs(model)
    (['conv_a', 'conv_b', 'bn'], True)
"""

from keras_compress.decomposition.decompose import decompose
from keras_compress.decomposition.macs import Geometry, layer_macs, model_macs
from keras_compress.decomposition.plan import LayerPlan, plan_decomposition
from keras_compress.decomposition.rank import Method, Setting
from keras_compress.decomposition.rebuild import replace_layers
from keras_compress.decomposition.report import decomposition_report
from keras_compress.decomposition.svd import KernelSVD
from keras_compress.errors import DecompositionError

__all__ = [
    "DecompositionError",
    "Geometry",
    "KernelSVD",
    "LayerPlan",
    "Method",
    "Setting",
    "decompose",
    "decomposition_report",
    "layer_macs",
    "model_macs",
    "plan_decomposition",
    "replace_layers",
]
