"""Callbacks that drive pruning in ``model.fit``: step/mask updates and summaries.

Step numbering follows tfmot: the batch run when ``optimizer.iterations == i``
is pruning step ``i + 1``, so ``ConstantSparsity(0.8, 0, frequency=100)`` first
prunes on the 100th batch, and a ``PolynomialDecay`` whose ``end_step`` is a
multiple of ``frequency`` reaches its final sparsity on batch ``end_step``.
The step comes from ``optimizer.iterations`` (restored with a ``.keras``
checkpoint), so a resumed run continues the schedule where it stopped; if the
optimizer is new (0 iterations) but the wrappers recorded a later step, that
recorded step is used.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_compress.errors import PruningError
from keras_compress.pruning.wrapper import collect_wrappers

__all__ = ["UpdatePruningStep", "PruningSummaries"]


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances the pruning step and updates the masks as the schedules say.

    Required when training a model made by :func:`prune_low_magnitude`. The
    masks are recomputed only on the steps the schedule selects (eagerly, before
    the batch); on all other batches the callback runs no TensorFlow op. At the
    end of each epoch and of training the pruned weights are written as zeros,
    so a saved model holds the sparse weights.

    Example:
        >>> model.fit(x, y, epochs=2, callbacks=[UpdatePruningStep()])  # doctest: +SKIP
    """

    def __init__(self):
        super().__init__()
        self.step = 0
        self._groups = []

    def on_train_begin(self, logs=None):
        wrappers = collect_wrappers(self.model)
        if not wrappers:
            raise PruningError(
                f"UpdatePruningStep: model '{self.model.name}' has no PruneLowMagnitude layer; "
                "wrap it with prune_low_magnitude first"
            )
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        recorded = max(int(keras.ops.convert_to_numpy(w.pruning_step)) for w in wrappers)
        # self.step = number of the last step already run; the next batch is step + 1.
        self.step = iterations if iterations > 0 or recorded < 0 else recorded
        groups = {}
        for w in wrappers:
            w.callback_attached = True
            groups.setdefault(id(w.pruning_schedule), (w.pruning_schedule, []))[1].append(w)
        self._groups = list(groups.values())
        self._steps_per_batch = int(getattr(self.model, "steps_per_execution", 1) or 1)

    def on_train_batch_begin(self, batch, logs=None):
        first, last = self.step + 1, self.step + self._steps_per_batch
        for schedule, wrappers in self._groups:
            # With steps_per_execution > 1 the masks are updated before the chunk
            # that contains a pruning step, at that step's sparsity.
            for s in range(last, first - 1, -1):
                should_prune, sparsity = schedule(s)
                if should_prune:
                    for w in wrappers:
                        w.update_masks(s, sparsity)
                    break
        self.step = last

    def _write_back(self):
        for _, wrappers in self._groups:
            for w in wrappers:
                w.apply_masks()
                w.pruning_step.assign(max(self.step, int(keras.ops.convert_to_numpy(w.pruning_step))))

    def on_epoch_end(self, epoch, logs=None):
        self._write_back()

    def on_train_end(self, logs=None):
        self._write_back()


class PruningSummaries(keras.callbacks.Callback):
    """Writes per-layer sparsity and thresholds to TensorBoard logs.

    Scalars ``pruning/<layer>/<weight>/sparsity`` and ``.../threshold`` plus
    ``pruning/sparsity`` (whole model) are written with ``tf.summary`` at the
    optimizer step, every epoch (or every ``update_freq`` batches if an int).

    Args:
        log_dir: Directory for the event files (TensorBoard's ``--logdir``).
        update_freq: ``"epoch"`` or a number of batches.

    Example:
        >>> callbacks = [UpdatePruningStep(), PruningSummaries("logs/prune")]  # doctest: +SKIP
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq < 1):
            raise PruningError(f"update_freq must be 'epoch' or an int >= 1, got {update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._writer = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self._wrappers = collect_wrappers(self.model)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "pruning"))

    @staticmethod
    def _scalar(name, value):
        """A TensorBoard scalar written with core TF (no `tensorboard` package needed)."""
        import tensorflow as tf

        metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata)

    def _log(self):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        total = zeros = 0
        with self._writer.as_default(step=step):
            for w in self._wrappers:
                for mask, threshold in zip(w.masks, w.thresholds):
                    m = keras.ops.convert_to_numpy(mask)
                    name = f"pruning/{w.layer.name}/{mask.path.split('/')[-1][: -len('_mask')]}"
                    self._scalar(f"{name}/sparsity", 1.0 - float(np.mean(m)))
                    self._scalar(f"{name}/threshold", float(keras.ops.convert_to_numpy(threshold)))
                    total += m.size
                    zeros += int(m.size - np.count_nonzero(m))
            self._scalar("pruning/sparsity", zeros / max(total, 1))
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._log()

    def on_epoch_end(self, epoch, logs=None):
        self._log()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
