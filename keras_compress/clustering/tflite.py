"""`tflite_kernel_values`: distinct values of every int8 kernel in a .tflite, per output channel.

What proves that clusters (and zeros) survived QAT and conversion: the
weights the interpreter will run, read from the flatbuffer with
:func:`edgetpu.model.read_model` (no TensorFlow).

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.convert import to_tflite
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones", name="fc")])
    >>> x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    >>> rows = tflite_kernel_values(to_tflite(m, quantization="int8", representative_data=x, verbose=False))
    >>> [(r["op"], r["max_unique_per_channel"]) for r in rows]
    [('FULLY_CONNECTED', 1)]
"""

from __future__ import annotations

import numpy as np

from edgetpu.model import read_model

__all__ = ["tflite_kernel_values"]

_KERNEL_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}


def tflite_kernel_values(tflite) -> list[dict]:
    """One row per int8 kernel of the main subgraph.

    Args:
        tflite: .tflite bytes or a path.

    Returns:
        ``[{"op", "tensor", "shape", "unique", "max_unique_per_channel",
        "zeros", "values"}]``: ``unique`` over the whole tensor,
        ``max_unique_per_channel`` the largest count over the output
        channels (the tensor's quantized dimension), ``zeros`` the fraction
        of exact zeros, ``values`` the int8 array itself.
    """
    model = read_model(tflite)
    graph = model.main
    rows = []
    for op in graph.operators:
        slot = _KERNEL_OPS.get(op.op)
        if slot is None or len(op.inputs) <= slot or op.inputs[slot] < 0:
            continue
        tensor = graph.tensors[op.inputs[slot]]
        values = model.tensor_data(tensor)
        if values is None or tensor.dtype != "int8" or values.shape != tuple(tensor.shape):
            continue
        axis = tensor.quantized_dimension if len(tensor.scale) > 1 else 0
        channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
        rows.append(
            {
                "op": op.op,
                "tensor": tensor.name,
                "shape": tuple(tensor.shape),
                "unique": int(np.unique(values).size),
                "max_unique_per_channel": max(int(np.unique(c).size) for c in channels),
                "zeros": float(np.mean(values == 0)),
                "values": values,
            }
        )
    return rows
