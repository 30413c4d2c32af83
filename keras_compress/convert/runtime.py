"""Op versions against the TF Lite runtime a board runs: ``to_tflite(..., min_runtime="2.14")``.

An interpreter refuses an op version newer than its release ("Didn't find op
for builtin opcode 'FULLY_CONNECTED' version '12' ... Registration failed").
TF 2.21's dynamic-range conversion quantizes Dense weights per channel, which
is FULLY_CONNECTED version 12 (TF Lite 2.17+; TensorFlow's op_version.cc:
hybrid float/int8 with per-channel weights); per-tensor Dense weights give
version 9 (2.3.0). :func:`dense_per_channel_allowed` says when to ask the
converter for per-tensor Dense weights; :func:`check_min_runtime` then verifies
every op of the result against the version table, and the converter's own
``min_runtime_version`` metadata against the runtime asked for.

Example:
    >>> from keras_compress.convert.runtime import first_release, dense_per_channel_allowed
    >>> first_release("FULLY_CONNECTED", 12)
    '2.17.0'
    >>> dense_per_channel_allowed("dynamic", "2.14"), dense_per_channel_allowed("dynamic", None)
    (False, True)
"""

from __future__ import annotations

from keras_compress.convert.options import parse_runtime
from keras_compress.errors import ConversionError

__all__ = ["check_min_runtime", "dense_per_channel_allowed", "first_release", "ops_too_new"]


def first_release(op: str, version: int) -> str | None:
    """First TF release whose TF Lite runtime runs ``op`` at ``version`` (``edgetpu.runtime_versions``).

    ``">X"`` when the version is newer than the table's last entry (X), None
    when the op is not in the table.
    """
    from edgetpu.runtime_versions import first_release as table_first_release

    return table_first_release(op, version)


def ops_too_new(model, runtime: str) -> list:
    """Every operator of ``model`` (path, bytes or parsed) that ``runtime`` cannot run, in order.

    Items have ``index``, ``op``, ``version`` and ``first_release`` (:class:`edgetpu.runtime_versions.OpRuntime`).
    """
    import edgetpu

    return edgetpu.ops_newer_than(model, runtime)


def _newer(release: str, runtime: str) -> bool:
    from edgetpu.runtime_versions import newer_than

    return newer_than(release, runtime)


def dense_per_channel_allowed(mode: str, runtime: str | None) -> bool:
    """False when a dynamic-range conversion for ``runtime`` must quantize Dense weights per tensor."""
    if runtime is None or str(getattr(mode, "value", mode)) != "dynamic":
        return True
    rel = first_release("FULLY_CONNECTED", 12)
    return rel is None or not _newer(rel, runtime)


def check_min_runtime(data: bytes, runtime: str, name: str) -> None:
    """Refuse a converted model that TF Lite ``runtime`` cannot load, naming each op, version and release.

    Raises:
        ConversionError: an op version first released after ``runtime``, or
            (for ops the table lacks) converter metadata saying so.
    """
    from edgetpu.model import read_model

    model = read_model(data)
    too_new = ops_too_new(model, runtime)
    if too_new:
        listed = "; ".join(f"op {t.index} {t.op} version {t.version} needs TF Lite {t.first_release}" for t in too_new)
        raise ConversionError(
            f"model {name!r}: min_runtime={runtime!r}, but {listed}. No converter setting lowers "
            f"{'these versions' if len(too_new) > 1 else 'this version'} here: run the model on a newer runtime, "
            "or change the layer that produces the op"
        )
    meta = model.min_runtime_version
    if meta and parse_runtime(meta) > parse_runtime(runtime):
        unknown = sorted({op.op for op in model.main.operators if first_release(op.op, op.version) is None})
        raise ConversionError(
            f"model {name!r}: min_runtime={runtime!r}, but the converter's min_runtime_version metadata says {meta}; "
            f"ops without a known first release: {', '.join(unknown) or 'none'}"
        )
