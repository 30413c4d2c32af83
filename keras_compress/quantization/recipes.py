"""QAT from a trained float model in one call (the pipeline's ``qat`` stage does the same inside a run).

Example:
    >>> # float_model trained on (x_train, y_train):
    >>> qat = fine_tune_qat(float_model, x_train, y_train, epochs=3)        # doctest: +SKIP
    >>> blob = keras_compress.convert.to_tflite(qat, quantization="int8")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import keras

from keras_compress.quantization.quantize import quantize_model

__all__ = ["fine_tune_qat"]


def fine_tune_qat(
    float_model,
    x: Any,
    y: Any = None,
    *,
    epochs: int = 3,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    loss: Any = "sparse_categorical_crossentropy",
    metrics: Any = ("accuracy",),
    validation_data: Any = None,
    callbacks: Any = None,
    float_layers=(),
    preserve_sparsity: bool = False,
    verbose: int = 0,
):
    """Quantization-aware fine-tuning of a trained float model.

    Makes :func:`quantize_model` of ``float_model`` (the float model is not
    changed), compiles it with Adam at ``learning_rate`` (a tenth of a usual
    training rate: the weights are already trained) and fits it. Seeding is
    the caller's job (``keras.utils.set_random_seed`` before the call): a
    library function does not reseed the global generators.

    Args:
        float_model: the trained Sequential or Functional model.
        x, y: training data as for ``model.fit`` (arrays or a ``tf.data.Dataset`` in ``x``).
        epochs, learning_rate, batch_size: fine-tuning schedule.
        loss, metrics: as ``model.compile`` takes them.
        validation_data, callbacks, verbose: passed to ``model.fit``.
        float_layers, preserve_sparsity: passed to :func:`quantize_model`.

    Returns:
        The trained QAT model; convert it with
        ``keras_compress.convert.to_tflite(qat, quantization="int8")``.
    """
    qat = quantize_model(float_model, float_layers=float_layers, preserve_sparsity=preserve_sparsity)
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=list(metrics))
    fit_kwargs = {"epochs": epochs, "verbose": verbose, "validation_data": validation_data, "callbacks": callbacks}
    if y is not None:
        fit_kwargs["batch_size"] = batch_size
        qat.fit(x, y, **fit_kwargs)
    else:
        qat.fit(x, **fit_kwargs)
    return qat
