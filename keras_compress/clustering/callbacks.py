"""`ClusteringSummaries`: TensorBoard scalars of clustering, per layer.

For every clustered weight: the number of distinct values it holds now, and
the centroid drift (mean absolute distance of the centroids from their
initial values). Written with core TensorFlow (no ``tensorboard`` package).
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_compress.clustering.wrapper import collect_wrappers
from keras_compress.errors import ClusteringError

__all__ = ["ClusteringSummaries"]


class ClusteringSummaries(keras.callbacks.Callback):
    """Logs each clustered weight's unique-value count and centroid drift to TensorBoard.

    Args:
        log_dir: the folder; scalars go to ``<log_dir>/clustering``.
        update_freq: ``"epoch"``, or an int: every that many batches too.

    Example:
        >>> import tempfile
        >>> cb = ClusteringSummaries(tempfile.mkdtemp())
        >>> cb.update_freq
        'epoch'
    """

    def __init__(self, log_dir: str, update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ClusteringError(f"update_freq must be 'epoch' or a positive int, got {update_freq!r}")
        self.log_dir = str(log_dir)
        self.update_freq = update_freq
        self._writer = None
        self._step = 0

    def _log(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "clustering"))
        metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        with self._writer.as_default(step=self._step):
            for wrapper in collect_wrappers(self.model):
                if not wrapper.built:
                    continue
                drift = wrapper.centroid_drift()
                for name, value in wrapper.clustered_weights().items():
                    tag = f"clustering/{wrapper.layer.name}/{name}"
                    unique = float(np.unique(keras.ops.convert_to_numpy(value)).size)
                    tf.summary.write(f"{tag}/unique_values", tf.constant(unique), metadata=metadata)
                    tf.summary.write(f"{tag}/centroid_drift", tf.constant(drift[name]), metadata=metadata)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            self._log()

    def on_epoch_end(self, epoch, logs=None):
        self._log()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
