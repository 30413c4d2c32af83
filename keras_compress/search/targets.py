"""The latency side of a target, as the search uses it: predict a Keras model's, measure .tflite files.

- ``cpu``: predictions from the measured per-layer lookup table
  (:class:`~keras_compress.search.latency.LatencyTable`, calibrated on the
  original), measurements through ``edgetpu.benchmark`` in interleaved rounds;
- ``edgetpu``: no device here, so both come from the documented estimate
  :func:`~keras_compress.search.latency.edgetpu_latency_ms`; said so in every output.

Example:
    >>> from keras_compress.search.targets import target_latency
    >>> target_latency("edgetpu", None).kind
    'estimated'
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

__all__ = ["target_latency", "CpuLatency", "EdgeTPULatency"]


class CpuLatency:
    """Measured CPU latency (XNNPACK, ``num_threads``) and the lookup-table prediction."""

    kind = "measured"

    def __init__(self, table: str | os.PathLike | None, num_threads: int = 1,
                 progress: Callable[[str], None] | None = None):
        from keras_compress.search.latency import LatencyTable

        self.table = LatencyTable(table, num_threads=num_threads)
        self.num_threads = num_threads
        self.say = progress or (lambda _m: None)
        self.calibrated = False

    def prepare(self, models: Sequence[Any]) -> None:
        """Measure every layer of ``models`` missing from the table (interleaved); calibrate on ``models[0]``."""
        self.table.measure(models, progress=self.say)

    def calibrate(self, model, measured_ms: float) -> dict:
        """Fit the table to the original's measured latency (see :meth:`LatencyTable.calibrate`)."""
        self.calibrated = True
        return self.table.calibrate(model, measured_ms, progress=self.say)

    def predict(self, model) -> float:
        """Predicted median ms of ``model`` as full int8 (measuring missing layers first)."""
        return float(self.table.predict(model, measure_missing=True).total_ms)

    def measure_models(self, blobs: Sequence[bytes], rounds: int = 15) -> list[float]:
        """Median ms of each .tflite, measured side by side in interleaved rounds.

        These are the figures a search reports, so they take more rounds than
        the table's entries (a burst of load on a shared machine once moved one
        model 20% in a 7-round measurement). A model whose median is over 1.2x
        its fastest round (most rounds slowed by other work) is named in the
        progress output: its figure carries that load.
        """
        from keras_compress.search.latency import measure_tflite

        found = measure_tflite({str(i): b for i, b in enumerate(blobs)}, num_threads=self.num_threads, rounds=rounds)
        for i in range(len(blobs)):
            median, fastest = found[str(i)]["median_ms"], min(found[str(i)]["rounds_ms"])
            if median > 1.2 * fastest:
                self.say(f"search: model {i + 1} of {len(blobs)}: median {median:.3f} ms over {rounds} rounds, "
                         f"{median / fastest:.2f}x its fastest round ({fastest:.3f} ms): the machine was busy, "
                         "this figure carries that load")
        return [found[str(i)]["median_ms"] for i in range(len(blobs))]


class EdgeTPULatency:
    """The Edge TPU estimate (no device here): from MACs and parameter bytes."""

    kind = "estimated"

    def prepare(self, models: Sequence[Any]) -> None:
        """Nothing to measure."""

    def calibrate(self, model, measured_ms: float) -> dict:
        """Nothing to calibrate: the estimate is not fitted to this machine."""
        return {}

    def predict(self, model) -> float:
        """Estimated ms on an Edge TPU (USB): MACs and the int8 bytes of the parameters."""
        from keras_compress.decomposition.macs import model_macs
        from keras_compress.search.latency import edgetpu_latency_ms

        return float(edgetpu_latency_ms(model_macs(model), model.count_params())["ms"])

    def measure_models(self, blobs: Sequence[bytes]) -> list[float]:
        raise NotImplementedError("no Edge TPU here: Edge TPU latency is estimated, never measured")


def target_latency(target: str, table: str | os.PathLike | None, *, num_threads: int = 1,
                   progress: Callable[[str], None] | None = None):
    """The latency model of ``target`` (``"cpu"`` or ``"edgetpu"``)."""
    if target == "edgetpu":
        return EdgeTPULatency()
    return CpuLatency(table, num_threads=num_threads, progress=progress)
