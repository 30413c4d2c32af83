"""The Edge TPU delegate: find Edge TPUs, load ``libedgetpu``, decide TPU or CPU.

What pycoral's ``pycoral.utils.edgetpu`` does, without pycoral:

* :data:`EDGETPU_SHARED_LIB` -- the delegate library per platform
  (``libedgetpu.so.1``, ``libedgetpu.1.dylib``, ``edgetpu.dll``);
  ``$EDGETPU_SHARED_LIB`` overrides it (e.g. a community build).
* :func:`load_edgetpu_delegate` -- ``load_delegate(lib, {"device": ...})``
  through the interpreter package in use (ai_edge_litert or tflite_runtime).
* :func:`list_edge_tpus` -- ``[{'type': 'usb'|'pci', 'path': ...}]``. Like
  pycoral (whose ``ListEdgeTpus`` calls ``EdgeTpuManager::EnumerateEdgeTpu``),
  it asks libedgetpu itself, through its C API ``edgetpu_list_devices``
  (``edgetpu_c.h``) loaded with ctypes. Without the library it returns ``[]``.
  :func:`scan_system` is a separate diagnostic that looks at sysfs
  (``/sys/class/apex`` for PCIe, USB ids 1a6e:089a / 18d1:9302) so error
  messages can say "a TPU is plugged in but the runtime is missing".
* :func:`plan` -- what ``edgetpu.runtime.make_interpreter`` runs: a compiled
  model (holding ``edgetpu-custom-op``) gets the delegate when a TPU answers;
  without one, the CPU model beside it (``foo_edgetpu.tflite`` ->
  ``foo.tflite``) is used with a logged warning, else :class:`NoEdgeTPUError`
  names the file to use. Other models run on the CPU (XNNPACK), no delegate.

Device strings (pycoral's): ``None`` any TPU, ``":<N>"`` the N-th TPU,
``"usb"`` / ``"usb:<N>"``, ``"pci"`` / ``"pci:<N>"``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import re
from pathlib import Path
from typing import Any

from edgetpu import backend as _backend
from edgetpu.errors import DelegateError, InvalidDeviceError, NoEdgeTPUError
from edgetpu.model import is_compiled

__all__ = [
    "DEVICE_FORMS",
    "EDGETPU_SHARED_LIB",
    "cpu_model_for",
    "list_edge_tpus",
    "load_edgetpu_delegate",
    "plan",
    "scan_system",
    "shared_lib",
    "validate_device",
]

log = logging.getLogger("edgetpu")

#: The Edge TPU delegate library of this platform (pycoral's table).
EDGETPU_SHARED_LIB = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}.get(platform.system(), "libedgetpu.so.1")

#: Accepted device strings.
DEVICE_FORMS = ('None (any Edge TPU)', '":<N>"', '"usb"', '"usb:<N>"', '"pci"', '"pci:<N>"')
_DEVICE_RE = re.compile(r"^(?:(usb|pci)(?::(\d+))?|:(\d+))$")

#: USB ids of the Coral USB Accelerator: before (Global Unichip) and after firmware load (Google).
USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))

RUNTIME_HINT = (
    "install the Edge TPU runtime (Coral's apt repository: `sudo apt-get install libedgetpu1-std`; "
    "macOS/Windows: Coral's edgetpu_runtime package) and plug in the Edge TPU"
)


class _Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]


def shared_lib() -> str:
    """The delegate library to load: ``$EDGETPU_SHARED_LIB`` or :data:`EDGETPU_SHARED_LIB`."""
    return os.environ.get("EDGETPU_SHARED_LIB") or EDGETPU_SHARED_LIB


def validate_device(device: str | None) -> tuple[str | None, int | None] | None:
    """Parse a device string into ``(type or None, index or None)``; None for ``device=None``.

    Raises:
        InvalidDeviceError: the string is not one of :data:`DEVICE_FORMS`.
    """
    if device is None:
        return None
    m = _DEVICE_RE.match(device) if isinstance(device, str) else None
    if not m:
        raise InvalidDeviceError(
            f"device {device!r} is not an Edge TPU device string; expected one of: {', '.join(DEVICE_FORMS)} "
            '(e.g. ":0", "usb", "usb:0", "pci", "pci:0")'
        )
    if m.group(3) is not None:
        return None, int(m.group(3))
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def _open_library(lib: str | None = None):
    try:
        return ctypes.CDLL(lib or shared_lib())
    except OSError:
        return None


def list_edge_tpus() -> list[dict[str, str]]:
    """Edge TPUs that libedgetpu sees: ``[{'type': 'usb'|'pci', 'path': ...}]``.

    Returns ``[]`` when the library is not installed (or too old to list).
    """
    lib = _open_library()
    if lib is None:
        return []
    try:
        fn = lib.edgetpu_list_devices
        free = lib.edgetpu_free_devices
    except AttributeError:
        return []
    fn.restype = ctypes.POINTER(_Device)
    fn.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    free.argtypes = [ctypes.POINTER(_Device)]
    free.restype = None
    n = ctypes.c_size_t(0)
    devs = fn(ctypes.byref(n))
    out: list[dict[str, str]] = []
    try:
        for i in range(n.value):
            d = devs[i]
            path = d.path.decode("utf-8", "replace") if d.path else ""
            out.append({"type": "pci" if d.type == 0 else "usb", "path": path})
    finally:
        if devs:
            free(devs)
    return out


def scan_system(sys_root: str = "/sys") -> list[dict[str, str]]:
    """Edge TPUs visible to the OS (Linux sysfs), whether or not libedgetpu is installed.

    PCIe/M.2 modules appear as ``/sys/class/apex/apex_N`` (gasket/apex driver);
    the USB Accelerator as USB device 1a6e:089a (before its firmware is loaded)
    or 18d1:9302 (after). Used for diagnostics only.
    """
    found: list[dict[str, str]] = []
    root = Path(sys_root)
    apex = root / "class" / "apex"
    if apex.is_dir():
        for p in sorted(apex.iterdir()):
            found.append({"type": "pci", "path": f"/dev/{p.name}"})
    usb = root / "bus" / "usb" / "devices"
    if usb.is_dir():
        for p in sorted(usb.iterdir()):
            try:
                vid = (p / "idVendor").read_text().strip().lower()
                pid = (p / "idProduct").read_text().strip().lower()
            except OSError:
                continue
            if (vid, pid) in USB_IDS:
                found.append({"type": "usb", "path": str(p), "id": f"{vid}:{pid}"})
    return found


def load_edgetpu_delegate(device: str | None = None, options: dict[str, Any] | None = None):
    """Load the Edge TPU delegate for ``device`` with the interpreter package in use.

    Args:
        device: None, ``":<N>"``, ``"usb"``, ``"usb:<N>"``, ``"pci"`` or ``"pci:<N>"``.
        options: extra delegate options (strings), passed to ``load_delegate``.

    Raises:
        InvalidDeviceError: a malformed device string.
        DelegateError: the library is missing or no device answered.
    """
    validate_device(device)
    opts = {str(k): str(v) for k, v in (options or {}).items()}
    if device is not None:
        opts["device"] = device
    lib = shared_lib()
    be = _backend.interpreter_backend()
    if _open_library(lib) is None:
        # Checked first: a failed load_delegate in ai_edge_litert also prints a
        # spurious "Exception ignored in Delegate.__del__" traceback.
        raise DelegateError(
            f"cannot load the Edge TPU delegate ({lib}, device {device or 'any'}) with {be.name}: the library "
            f"{lib} is not installed or cannot be loaded; {RUNTIME_HINT}"
        )
    try:
        return be.load_delegate(lib, opts)
    except (ValueError, OSError, RuntimeError) as e:
        missing = _open_library(lib) is None
        why = f"the library {lib} is not installed or cannot be loaded" if missing else "no Edge TPU answered"
        raise DelegateError(
            f"cannot load the Edge TPU delegate ({lib}, device {device or 'any'}) with {be.name}: {why} "
            f"({str(e).strip()}); {RUNTIME_HINT}"
        ) from None


def cpu_model_for(model_path: str | None) -> Path | None:
    """The CPU model a compiled model was made from: ``foo_edgetpu.tflite`` -> ``foo.tflite``."""
    if not model_path:
        return None
    p = Path(model_path)
    if not p.name.endswith("_edgetpu.tflite"):
        return None
    return p.with_name(p.name[: -len("_edgetpu.tflite")] + ".tflite")


def _matching(devices: list[dict[str, str]], spec) -> bool:
    if spec is None:
        return bool(devices)
    kind, idx = spec
    pool = [d for d in devices if kind is None or d["type"] == kind]
    return len(pool) > (idx or 0)


def plan(model_bytes: bytes, model_path: str | None, device: str | None = None):
    """Decide how to run a model: ``(model_bytes_to_use, delegates, note)``.

    * No ``edgetpu-custom-op`` in the model: ``(model_bytes, [], note)`` -- CPU with XNNPACK.
    * Compiled model and an Edge TPU answers: ``(model_bytes, [delegate], note)``.
    * Compiled model, no TPU, ``foo.tflite`` beside ``foo_edgetpu.tflite``: that
      CPU model's bytes, ``[]``, and a warning on the ``edgetpu`` logger.

    Raises:
        InvalidModelError: the bytes are not a .tflite model.
        InvalidDeviceError: a malformed device string.
        NoEdgeTPUError: compiled model, no TPU, no CPU model beside it (the
            message names the CPU model to use).
        DelegateError: a TPU is there but its delegate failed to load and no
            CPU model is beside the compiled one.
    """
    where = model_path or "model buffer"
    spec = validate_device(device)
    if not is_compiled(model_bytes, name=where):
        note = f"{where}: not compiled for the Edge TPU; running on the CPU (XNNPACK)"
        if device is not None:
            note += f"; device {device!r} ignored"
        return model_bytes, [], note

    lib = shared_lib()
    load_error: DelegateError | None = None
    if _open_library(lib) is None:
        seen = scan_system()
        why = f"the Edge TPU runtime library {lib} is not installed"
        if seen:
            why += f" (the OS sees {len(seen)} Edge TPU(s): {', '.join(d['type'] for d in seen)})"
    else:
        devices = list_edge_tpus()
        if _matching(devices, spec):
            try:
                delegate = load_edgetpu_delegate(device)
                kind = device or (devices[0]["type"] + ":" + "0" if devices else "any")
                return model_bytes, [delegate], f"{where}: running on the Edge TPU ({kind}) via {lib}"
            except DelegateError as e:
                load_error = e
                why = f"the Edge TPU delegate failed to load ({e})"
        elif devices:
            why = f"no Edge TPU matches device {device!r} (found: " + ", ".join(
                f"{d['type']} {d['path']}" for d in devices) + ")"
        else:
            why = "no Edge TPU device is connected"

    cpu = cpu_model_for(model_path)
    if cpu is not None and cpu.is_file():
        data = cpu.read_bytes()
        if not is_compiled(data, name=str(cpu)):
            note = f"{where}: {why}; running the CPU model {cpu} beside it instead (XNNPACK)"
            log.warning(note)
            return data, [], note
    suggestion = (
        f"use the CPU model it was compiled from instead ({cpu})" if cpu is not None
        else "use the CPU .tflite it was compiled from instead (the file without _edgetpu)"
    )
    msg = (f"{where} is compiled for the Edge TPU (edgetpu-custom-op) but {why}; a CPU interpreter cannot run it: "
           f"{suggestion}, or {RUNTIME_HINT}")
    if load_error is not None:
        raise DelegateError(msg) from None
    raise NoEdgeTPUError(msg)
