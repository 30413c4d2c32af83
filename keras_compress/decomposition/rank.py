"""Per-layer settings (rank, energy or MAC ratio; method) and the choice of method and rank.

A :class:`Setting` says how to pick the rank of one layer: a fixed ``rank``,
the smallest rank keeping ``energy`` of the squared singular values, or the
largest rank whose MACs stay within ``ratio`` of the layer's. :func:`choose`
applies it to every factorization the layer admits and keeps one:

- with ``rank`` or ``energy``, the method with fewer MACs (ties: more energy);
- with ``ratio`` (all methods then meet the same MAC budget), the method that
  keeps more energy (ties: fewer MACs).

A factorization that does not save MACs is never chosen; when none does, the
layer is left alone and :func:`choose` says why.

Example:
    >>> import numpy as np
    >>> from keras_compress.decomposition.macs import Geometry
    >>> from keras_compress.decomposition.svd import KernelSVD
    >>> g = Geometry("conv", (3, 3, 16, 32), (8, 8), (8, 8), True)
    >>> kernel = np.random.default_rng(0).normal(size=(3, 3, 16, 32))
    >>> svds = {m: KernelSVD(kernel, m) for m in g.methods()}
    >>> c = choose(g, svds, Setting(ratio=0.5))
    >>> c.method, c.rank, c.macs <= 0.5 * g.macs_before
    ('spatial', 16, True)
    >>> print(choose(g, svds, Setting(rank=32)))
    channel: rank 32 is not below the full rank 32; spatial: rank 32 needs 294912 MACs, not fewer than the layer's 294912
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keras_compress.decomposition.macs import Geometry
from keras_compress.decomposition.svd import KernelSVD
from keras_compress.errors import DecompositionError

__all__ = ["Choice", "Method", "Setting", "choose"]


class Method(str, enum.Enum):
    """How a Conv layer is factorized (Dense layers always use a plain SVD)."""

    AUTO = "auto"
    CHANNEL = "channel"
    SPATIAL = "spatial"

    @classmethod
    def get(cls, value: str | Method) -> Method:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise DecompositionError(f"method: expected one of {allowed}; got {value!r}") from None


def _check_number(name: str, value: Any, kind: type, low: float, high: float, high_ok: bool) -> None:
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (low < value < high or (high_ok and value == high)):
        bound = "]" if high_ok else ")"
        raise DecompositionError(
            f"{name}: expected {kind.__name__} in ({low}, {high}{bound}; got {value!r}"
        )


@dataclass(frozen=True)
class Setting:
    """How to pick one layer's rank: exactly one of ``rank``, ``energy``, ``ratio``.

    Attributes:
        rank: fixed rank (int >= 1).
        energy: keep at least this fraction of the squared singular values, in (0, 1].
        ratio: MACs after / MACs before, at most, in (0, 1).
        method: ``"auto"``, ``"channel"`` or ``"spatial"`` (Conv layers).
    """

    rank: int | None = None
    energy: float | None = None
    ratio: float | None = None
    method: Method = Method.AUTO

    def __post_init__(self):
        given = [k for k in ("rank", "energy", "ratio") if getattr(self, k) is not None]
        if len(given) != 1:
            raise DecompositionError(
                f"give exactly one of rank, energy, ratio; got {', '.join(given) or 'none'}"
            )
        if self.rank is not None:
            _check_number("rank", self.rank, int, 0, float("inf"), False)
        if self.energy is not None:
            _check_number("energy", self.energy, float, 0.0, 1.0, True)
        if self.ratio is not None:
            _check_number("ratio", self.ratio, float, 0.0, 1.0, False)
        object.__setattr__(self, "method", Method.get(self.method))

    @classmethod
    def get(cls, value: Any, default: Setting | None = None, where: str = "setting") -> Setting:
        """A setting from an int (rank), a float (ratio), a mapping, or a Setting.

        A mapping may omit the criterion (and the method) to take them from ``default``.
        """
        if isinstance(value, Setting):
            return value
        if isinstance(value, bool):
            raise DecompositionError(f"{where}: expected an int rank, a float ratio or a dict; got {value!r}")
        if isinstance(value, int):
            return cls(rank=value, method=default.method if default else Method.AUTO)
        if isinstance(value, float):
            return cls(ratio=value, method=default.method if default else Method.AUTO)
        if isinstance(value, Mapping):
            unknown = set(value) - {"rank", "energy", "ratio", "method"}
            if unknown:
                raise DecompositionError(
                    f"{where}: unknown keys {sorted(unknown)}; allowed: rank, energy, ratio, method"
                )
            base = {} if default is None else {"rank": default.rank, "energy": default.energy,
                                               "ratio": default.ratio, "method": default.method}
            if any(k in value for k in ("rank", "energy", "ratio")):
                base.update(rank=None, energy=None, ratio=None)
            base.update(value)
            try:
                return cls(**base)
            except DecompositionError as e:
                raise DecompositionError(f"{where}: {e}") from None
        raise DecompositionError(f"{where}: expected an int rank, a float ratio or a dict; got {value!r}")


@dataclass(frozen=True)
class Choice:
    """One factorization of one layer: method, rank, and what it costs and keeps."""

    method: str
    rank: int
    macs: int
    params: int
    energy: float


def _candidate(geometry: Geometry, svd: KernelSVD, method: str, setting: Setting) -> Choice | str:
    before = geometry.macs_before
    full = svd.full_rank
    if setting.rank is not None:
        rank = setting.rank
        if rank >= full:
            return f"{method}: rank {rank} is not below the full rank {full}"
    elif setting.energy is not None:
        rank = svd.rank_for_energy(setting.energy)
    else:
        rank = min(int(setting.ratio * before // geometry.macs(method, 1)), full)
        if rank < 1:
            return (f"{method}: ratio {setting.ratio} leaves {int(setting.ratio * before)} MACs; "
                    f"rank 1 needs {geometry.macs(method, 1)}")
    macs = geometry.macs(method, rank)
    if macs >= before:
        return f"{method}: rank {rank} needs {macs} MACs, not fewer than the layer's {before}"
    return Choice(method, rank, macs, geometry.params(method, rank), svd.energy(rank))


def choose(geometry: Geometry, svds: Mapping[str, KernelSVD], setting: Setting) -> Choice | str:
    """The factorization of one layer under ``setting``, or why it is left alone.

    Args:
        geometry: the layer's :class:`~keras_compress.decomposition.macs.Geometry`.
        svds: method name -> :class:`~keras_compress.decomposition.svd.KernelSVD`, for
            every method the layer admits (``geometry.methods()``).
        setting: the layer's :class:`Setting`.
    """
    methods = list(svds)
    if geometry.kind == "conv" and setting.method is not Method.AUTO:
        if setting.method.value not in methods:
            return (f"method '{setting.method.value}' needs a 2-D kernel larger than 1 in both "
                    f"dimensions; this kernel is {geometry.kernel_shape[:-2]}")
        methods = [setting.method.value]
    results = [_candidate(geometry, svds[m], m, setting) for m in methods]
    choices = [c for c in results if isinstance(c, Choice)]
    if not choices:
        return "; ".join(results)
    if setting.ratio is not None:
        return max(choices, key=lambda c: (c.energy, -c.macs))
    return min(choices, key=lambda c: (c.macs, -c.energy))
