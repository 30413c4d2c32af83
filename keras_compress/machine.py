"""What machine a figure came from: CPU, cores, library versions, and the ISA features that decide int8 speed.

XNNPACK's int8 kernels beat float32 only where the CPU has int8 dot-product
instructions: AVX-512 VNNI or AVX-VNNI (or AMX) on x86, ``asimddp``
(dotprod) or ``i8mm`` on Arm. On an AVX2-only x86 CPU, or an Arm core without
dotprod (Raspberry Pi 3/4's Cortex-A53/A72), an int8 model runs at about the
speed of the float32 one; it is still four times smaller. Every latency table
this project writes (the demo, the recipes, ``bench/``) carries the line
:func:`describe` makes, so a reader knows which case a figure belongs to.

Example:
    >>> from keras_compress.machine import int8_note
    >>> int8_note({"arch": "x86_64", "isa": ["avx2"]})
    'no int8 dot-product instructions (avx512_vnni, avx_vnni, amx_int8): int8 runs at about float32 speed'
    >>> int8_note({"arch": "aarch64", "isa": ["asimd", "asimddp"]})
    'int8 dot-product instructions: asimddp'
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine_description", "cpu_features", "int8_note", "describe", "loadavg", "ISA_FEATURES", "INT8_DOT"]

#: The CPU features reported, per architecture family (Linux /proc/cpuinfo names).
ISA_FEATURES = {
    "x86": ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"),
    "arm": ("asimd", "asimddp", "i8mm", "sve"),
}
#: The features that give XNNPACK fast int8 dot products.
INT8_DOT = {"x86": ("avx512_vnni", "avx_vnni", "amx_int8"), "arm": ("asimddp", "i8mm")}

#: macOS sysctl names of the Arm features (Apple silicon has both).
_MAC_ARM = {"asimddp": "hw.optional.arm.FEAT_DotProd", "i8mm": "hw.optional.arm.FEAT_I8MM", "asimd": "hw.optional.neon"}


def _family(arch: str) -> str:
    return "arm" if arch.lower().startswith(("arm", "aarch64")) else "x86"


def _cpuinfo() -> tuple[str | None, set[str]]:
    """Model name and feature flags from /proc/cpuinfo (Linux); (None, set()) elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    name, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and name is None:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, flags


def _mac_flags() -> set[str]:
    found = set()
    for feature, key in _MAC_ARM.items():
        try:
            out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.stdout.strip() == "1":
            found.add(feature)
    return found


def cpu_features() -> dict[str, Any]:
    """``{"arch", "cpu", "isa", "int8_dot_product"}`` of this machine.

    ``isa`` lists the features of :data:`ISA_FEATURES` the CPU has, in that
    order; ``int8_dot_product`` says whether any of :data:`INT8_DOT` is among them.
    """
    arch = platform.machine() or "unknown"
    name, flags = _cpuinfo()
    if not flags and sys.platform == "darwin" and _family(arch) == "arm":
        flags = _mac_flags()
    family = _family(arch)
    isa = [f for f in ISA_FEATURES[family] if f in flags]
    return {
        "arch": arch,
        "cpu": name or platform.processor() or arch,
        "isa": isa,
        "int8_dot_product": any(f in isa for f in INT8_DOT[family]),
    }


def int8_note(m: dict[str, Any]) -> str:
    """One phrase: whether this CPU's int8 kernels should beat float32, and why."""
    family = _family(str(m.get("arch", "")))
    have = [f for f in INT8_DOT[family] if f in (m.get("isa") or [])]
    if have:
        return f"int8 dot-product instructions: {', '.join(have)}"
    return f"no int8 dot-product instructions ({', '.join(INT8_DOT[family])}): int8 runs at about float32 speed"


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages (Linux), to tell a quiet machine from a busy one."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", None)
    except ImportError:
        return None


def machine_description(modules: tuple[str, ...] = ("tensorflow", "keras", "ai_edge_litert", "numpy")) -> dict[str, Any]:
    """CPU, int8-relevant ISA features, cores, load and library versions, for run.json and bench results.

    Args:
        modules: the libraries whose ``__version__`` is recorded (``None`` where
            one is not installed).

    Returns:
        ``{"cpu", "arch", "isa", "int8_dot_product", "cores", "affinity_cores",
        "python", "versions", "loadavg"}``.
    """
    m = cpu_features()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    m.update(
        cores=os.cpu_count(),
        affinity_cores=affinity,
        python=platform.python_version(),
        versions={name: _version(name) for name in modules},
        loadavg=loadavg(),
    )
    return m


def describe(m: dict[str, Any]) -> str:
    """The one line every latency table carries: CPU, cores, ISA features and what they mean for int8.

    Example:
        >>> describe({"cpu": "AMD EPYC", "cores": 2, "arch": "x86_64", "isa": ["avx2"]})
        'CPU: AMD EPYC, 2 cores, x86_64 (avx2); no int8 dot-product instructions (avx512_vnni, avx_vnni, amx_int8): int8 runs at about float32 speed'
    """
    isa = ", ".join(m.get("isa") or []) or "no SIMD features reported"
    return f"CPU: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('arch', '?')} ({isa}); {int8_note(m)}"
