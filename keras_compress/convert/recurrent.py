"""Recurrent layers in conversion: the fused-LSTM route and what still risks a converter crash.

Keras 3 traces an ``LSTM`` as a ``tf.while_loop``; TF 2.21's converter turns
that into a ``WHILE`` op, and its int8 / int16x8 calibrator kills the process
(signal 11) on it, as it does for ``GRU`` and ``SimpleRNN``. tf_keras avoided
the loop: its LSTM called a TF function carrying the attribute
``api_implements="lstm_<id>"``, which the converter's composite-function pass
(``PrepareCompositeFunctionsPass`` -> ``ConvertKerasLSTMLayer``) replaces by one
``UNIDIRECTIONAL_SEQUENCE_LSTM`` op. :func:`with_fused_lstms` does the same for
Keras 3: it clones the model (``keras.models.clone_model``, sharing every other
layer) with each fusable LSTM replaced by an LSTM whose call is such a function.
The int8 result is ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (int8 in/out, int16 cell
state, int32 gate biases), ``STRIDED_SLICE`` for the last step (when
``return_sequences=False``) and the ops of the layers around it, which the
Edge TPU compiler maps.

A layer is fused only where the fused op computes exactly what Keras does:
``tanh`` / ``sigmoid`` activations, no mask, no initial or returned state, not
stateful, not backwards, float32, and a static batch (the converter needs a
fixed state shape). :func:`crash_risks` lists the recurrent layers left after
that, which is what decides running the converter in a separate process.

Example:
    >>> import keras
    >>> from keras_compress.convert.recurrent import fusable_reason, crash_risks
    >>> m = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    >>> fusable_reason(m.layers[0]) is None
    True
    >>> g = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, name="gru")])
    >>> [layer.name for layer, _ in crash_risks(g, fused=())]
    ['gru']
"""

from __future__ import annotations

import functools
import uuid

from keras_compress.convert.layers import walk_layers

__all__ = ["RECURRENT_HELP", "crash_risks", "fusable_lstm_names", "fusable_reason", "with_fused_lstms"]

#: What to do instead, per recurrent layer class the int8 calibrator crashes on.
RECURRENT_HELP = {
    "GRU": "TFLite has no fused GRU op and TF's int8 calibrator crashes on the GRU's WHILE loop; build it with "
    "quantize_model(model) (QAT unrolls it into int8 FULLY_CONNECTED / LOGISTIC / TANH / MUL ops), "
    "GRU(..., unroll=True) (int8 on the CPU, but TF's converter leaves its SPLIT in float in about 1 of 3 "
    "conversions), replace it by an LSTM (fused into UNIDIRECTIONAL_SEQUENCE_LSTM, Edge TPU-mappable), or convert with "
    "quantization='dynamic'",
    "LSTM": "this LSTM cannot be fused into UNIDIRECTIONAL_SEQUENCE_LSTM ({why}) and TF's int8 calibrator crashes on "
    "its WHILE loop; make it fusable (tanh / sigmoid, no mask, no initial or returned state, not stateful, not "
    "backwards, static batch) or convert with quantization='dynamic'",
    "SimpleRNN": "TF's int8 calibrator crashes on the SimpleRNN's WHILE loop; build it with SimpleRNN(..., unroll=True) "
    "or convert with quantization='dynamic'",
}


def _makes_masks(model) -> bool:
    """True when some layer produces a Keras mask (Masking, Embedding(mask_zero=True)), which the fused op lacks."""
    import keras

    return any(isinstance(layer, keras.layers.Masking) or getattr(layer, "mask_zero", False) for layer in walk_layers(model))


def fusable_reason(layer, batch_size: int | None = 1, masked: bool = False) -> str | None:
    """None when ``layer`` (a Keras LSTM) can become one UNIDIRECTIONAL_SEQUENCE_LSTM; else why not.

    ``masked``: the model produces Keras masks (the fused op has no mask input).
    """
    import keras

    if not isinstance(layer, keras.layers.LSTM):
        return "not an LSTM"
    cfg = layer.get_config()
    checks = (
        (batch_size is None, "a dynamic batch (the fused op needs a fixed state shape)"),
        (cfg.get("activation") != "tanh", f"activation {cfg.get('activation')!r} (the fused op uses tanh)"),
        (cfg.get("recurrent_activation") != "sigmoid",
         f"recurrent_activation {cfg.get('recurrent_activation')!r} (the fused op uses sigmoid)"),
        (cfg.get("return_state"), "return_state=True"),
        (cfg.get("stateful"), "stateful=True"),
        (cfg.get("go_backwards"), "go_backwards=True"),
        (layer.compute_dtype != "float32", f"compute dtype {layer.compute_dtype}"),
        (masked, "the model makes Keras masks (Masking / mask_zero=True) and the fused op has no mask input"),
    )
    return next((why for bad, why in checks if bad), None)


def _lstm_function(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
    """The LSTM of Keras (gates i, f, c, o; tanh / sigmoid), with tf_keras's standard_lstm signature.

    The converter replaces the whole body by UNIDIRECTIONAL_SEQUENCE_LSTM; it is
    written out so that the TF graph computes the same thing if it does not.
    """
    import tensorflow as tf

    h, c, outputs = init_h, init_c, []
    for x in tf.unstack(inputs, axis=1):
        z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    return h, tf.stack(outputs, axis=1), h, c, tf.constant(0.0)


@functools.lru_cache(maxsize=1)
def _fused_lstm_class():
    import keras
    import tensorflow as tf

    class FusedLSTM(keras.layers.LSTM):
        """An LSTM whose call is one TF function the TFLite converter fuses (conversion only)."""

        def call(self, sequences, initial_state=None, mask=None, training=False):
            if initial_state is not None or mask is not None:
                return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
            # tf.function attributes (public allowlist): "api_implements" starting with "lstm_" marks a
            # Keras LSTM for the converter; "time_major" / "go_backwards" are read by ConvertKerasLSTMLayer.
            fn = tf.function(_lstm_function, autograph=False, experimental_attributes={
                "api_implements": f"lstm_{uuid.uuid4()}", "time_major": False, "go_backwards": False})
            batch = sequences.shape[0] if sequences.shape[0] is not None else tf.shape(sequences)[0]
            zeros = tf.zeros((batch, self.units), sequences.dtype)
            bias = self.cell.bias if self.use_bias else tf.zeros((4 * self.units,), sequences.dtype)
            # Weights go in as tensors: the converter fuses only functions whose arguments are ranked tensors.
            args = [tf.convert_to_tensor(w) for w in (self.cell.kernel, self.cell.recurrent_kernel, bias)]
            last, seq, _, _, _ = fn(sequences, zeros, zeros, *args)
            return seq if self.return_sequences else last

    return FusedLSTM


def fusable_lstm_names(model, batch_size: int | None = 1) -> list[str]:
    """Names of the LSTM layers of ``model`` that :func:`with_fused_lstms` would replace."""
    masked = _makes_masks(model)
    return [layer.name for layer in walk_layers(model) if fusable_reason(layer, batch_size, masked) is None]


def with_fused_lstms(model, batch_size: int | None = 1):
    """``(model', names)``: a clone of ``model`` whose fusable LSTMs convert to UNIDIRECTIONAL_SEQUENCE_LSTM.

    Every other layer is shared with ``model`` (same weights); ``names`` lists
    the LSTM layers replaced. Returns ``(model, [])`` when there is none.
    """
    import keras

    if not fusable_lstm_names(model, batch_size):
        return model, []
    fused_cls, pairs, masked = _fused_lstm_class(), [], _makes_masks(model)

    def clone(layer):
        if fusable_reason(layer, batch_size, masked) is not None:
            return layer
        new = fused_cls.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    clone_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        new.set_weights(old.get_weights())
    return clone_model, [old.name for old, _ in pairs]


def crash_risks(model, fused=(), batch_size: int | None = 1) -> list[tuple]:
    """``[(layer, what to do)]``: recurrent layers TF's int8 / int16x8 calibrator crashes on.

    ``fused`` names the LSTMs already taken by the fused route (no risk).
    Unrolled layers (``unroll=True``) have no WHILE loop and are not listed.
    """
    import keras

    risks, seen, masked = [], set(), _makes_masks(model)
    for layer in walk_layers(model):
        if not isinstance(layer, keras.layers.RNN) or layer.name in fused or getattr(layer, "unroll", False):
            continue
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        kind = next((k for k in ("LSTM", "GRU", "SimpleRNN") if isinstance(layer, getattr(keras.layers, k))), None)
        why = fusable_reason(layer, batch_size, masked) if kind == "LSTM" else None
        help_text = RECURRENT_HELP.get(kind, "TF's int8 calibrator crashes on recurrent WHILE loops; unroll the layer "
                                             "or convert with quantization='dynamic'")
        risks.append((layer, help_text.format(why=why)))
    return risks
