"""QAT of recurrent layers (GRU, LSTM), unrolled over the time steps as int8 ops.

TFLite has no int8 GRU kernel, and the converter turns a Keras GRU / LSTM
into a WHILE loop that its int8 calibration crashes on. Unrolled over a
static number of time steps, the same cell is a chain of ops that all have
int8 kernels: FULLY_CONNECTED, ADD, MUL, SUB, LOGISTIC, TANH, STRIDED_SLICE
and PACK. :class:`RecurrentScheme` computes the cell that way, with one range
per intermediate tensor shared by all time steps (the sigmoid / tanh outputs
get TFLite's fixed ranges), so the converted model is full int8 with no
calibration data. The sequence length must be known (static) in the model.

Not simulated (a clear error instead): ``return_state``, ``stateful``, masks,
an initial state, and activations other than tanh / sigmoid.

Example:
    >>> import keras
    >>> inp = keras.Input((6, 3))
    >>> gru = keras.layers.GRU(4)
    >>> _ = gru(inp)
    >>> recurrent_reason(gru) is None
    True
    >>> lstm = keras.layers.LSTM(4, return_state=True)
    >>> _ = lstm(inp)
    >>> recurrent_reason(lstm)
    'return_state / stateful recurrent layers are not simulated'
"""

from __future__ import annotations

import keras
from keras import ops

from keras_compress.quantization import activations as A
from keras_compress.quantization import quantizers as Q

__all__ = ["RecurrentScheme", "recurrent_reason"]

_L = keras.layers
_SIG = Q.FixedRangeQuantizer.for_activation("sigmoid")
_TANH = Q.FixedRangeQuantizer.for_activation("tanh")


def recurrent_reason(layer) -> str | None:
    """Why ``layer`` (a GRU / LSTM) cannot be simulated unrolled, or None."""
    cell = layer.cell
    shape = (layer.get_build_config() or {}).get("input_shape") if layer.built else None
    steps = shape[1] if shape is not None and len(shape) == 3 else None
    if layer.return_state or layer.stateful:
        return "return_state / stateful recurrent layers are not simulated"
    if A.activation_name(cell.activation) != "tanh" or A.activation_name(cell.recurrent_activation) != "sigmoid":
        return "only activation='tanh' with recurrent_activation='sigmoid' is simulated"
    if not isinstance(steps, int):
        return "the number of time steps must be static (give keras.Input a fixed sequence length)"
    return None


class RecurrentScheme:
    """GRU (reset_after True or False) and LSTM, unrolled, with a range after each op."""

    GRU_NAMES = ("inputs_proj", "recurrent_proj", "z_pre", "r_pre", "r_times_h", "r_times_state", "h_pre",
                 "z_times_state", "one_minus_z", "update", "state")  # fmt: skip
    LSTM_NAMES = ("inputs_proj", "recurrent_proj", "gates", "f_times_c", "i_times_g", "carry", "state")

    def __init__(self, wrapper):
        self.w = wrapper
        self.layer = wrapper.layer
        self.cell = self.layer.cell
        self.lstm = isinstance(self.layer, _L.LSTM)
        self.q = Q.MovingAverageQuantizer()
        self.vars = {}

    def build(self, input_shape):
        for name in self.LSTM_NAMES if self.lstm else self.GRU_NAMES:
            self.vars[name] = self.q.build(None, name, self.w)

    def r(self, name, x, training):
        return self.q(x, training, self.vars[name])

    def weight(self, variable):
        return self.w.weight_quantizer(ops.convert_to_tensor(variable), True, {})

    def call(self, x, training, mask=None, initial_state=None, **kwargs):
        if mask is not None or initial_state is not None:
            raise NotImplementedError("masks and initial states of recurrent layers are not simulated")
        cell, layer = self.cell, self.layer
        steps = x.shape[1]
        proj = ops.matmul(x, self.weight(cell.kernel))
        if cell.use_bias:
            proj = proj + (cell.bias[0] if getattr(cell, "reset_after", False) else cell.bias)
        proj = self.r("inputs_proj", proj, training)
        order = range(steps - 1, -1, -1) if layer.go_backwards else range(steps)
        step = self.lstm_step if self.lstm else self.gru_step
        state, outputs = None, []
        for t in order:
            state = step(proj[:, t, :], state, training)
            outputs.append(state[0] if self.lstm else state)
        if layer.return_sequences:
            return ops.stack(outputs, axis=1)
        return outputs[-1]

    def gru_step(self, xt, h, training):
        cell, u, r = self.cell, self.cell.units, self.r
        x_z, x_r, x_h = xt[:, :u], xt[:, u : 2 * u], xt[:, 2 * u :]
        rk = self.weight(cell.recurrent_kernel)
        rec_bias = cell.bias[1] if cell.use_bias and cell.reset_after else None
        if h is None:  # the zero initial state: the recurrent matmul is its bias (a constant)
            inner = rec_bias
        elif cell.reset_after:
            inner = ops.matmul(h, rk)
            inner = r("recurrent_proj", inner if rec_bias is None else inner + rec_bias, training)
        else:
            inner = r("recurrent_proj", ops.matmul(h, rk[:, : 2 * u]), training)

        def gate(xg, part, name):
            pre = xg if part is None else r(name, xg + part, training)
            return _SIG(ops.sigmoid(pre), training, {})

        z = gate(x_z, None if inner is None else inner[..., :u], "z_pre")
        g = gate(x_r, None if inner is None else inner[..., u : 2 * u], "r_pre")
        if cell.reset_after:
            rh = None if inner is None else r("r_times_h", g * inner[..., 2 * u :], training)
        else:
            rh = None if h is None else r("r_times_h", ops.matmul(r("r_times_state", g * h, training), rk[:, 2 * u :]), training)
        hh = _TANH(ops.tanh(x_h if rh is None else r("h_pre", x_h + rh, training)), training, {})
        update = r("one_minus_z", 1.0 - z, training) * hh
        if h is None:  # (one range on the first state: the converter keeps the first of two in a row)
            return r("state", update, training)
        return r("state", r("z_times_state", z * h, training) + r("update", update, training), training)

    def lstm_step(self, xt, state, training):
        cell, u, r = self.cell, self.cell.units, self.r
        if state is None:
            pre = xt
        else:
            h, c = state
            pre = r("gates", xt + r("recurrent_proj", ops.matmul(h, self.weight(cell.recurrent_kernel)), training), training)
        i = _SIG(ops.sigmoid(pre[:, :u]), training, {})
        f = _SIG(ops.sigmoid(pre[:, u : 2 * u]), training, {})
        g = _TANH(ops.tanh(pre[:, 2 * u : 3 * u]), training, {})
        o = _SIG(ops.sigmoid(pre[:, 3 * u :]), training, {})
        if state is None:  # (one range on the first carry: the converter keeps the first of two in a row)
            c = r("carry", i * g, training)
        else:
            c = r("carry", r("f_times_c", f * c, training) + r("i_times_g", i * g, training), training)
        h = r("state", o * _TANH(ops.tanh(c), training, {}), training)
        return h, c
