"""Writing output files safely: temp file in the same folder, then an atomic rename.

Used by every writer of both packages (compiled models, converted models,
summaries, reports), so they all behave alike:

* a crash, an exception or Ctrl-C leaves either the old file or the new one,
  never a half-written one, and no temp file behind;
* a new file gets the permissions ``open()`` would give it (``0o666`` less the
  umask); a replaced file keeps its permission bits, as when ``open()``
  truncates it;
* an existing read-only target, a folder in the way, or a parent that is a file
  is an :class:`~edgetpu.errors.OutputError` naming the path; nothing is written.

    >>> import os, stat, tempfile
    >>> from edgetpu import atomic_write_bytes
    >>> d = tempfile.mkdtemp()
    >>> p = atomic_write_bytes(os.path.join(d, "sub", "m.bin"), b"data")
    >>> p.read_bytes(), sorted(os.listdir(p.parent))
    (b'data', ['m.bin'])
    >>> os.chmod(p, 0o444)
    >>> atomic_write_bytes(p, b"other")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgetpu.errors.OutputError: ...m.bin: the file exists and is read-only; refusing to replace it (make it writable or write elsewhere)
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Union

from edgetpu.errors import EdgeTPUError, OutputError

__all__ = ["atomic_write_bytes", "check_writable"]

PathLike = Union[str, "os.PathLike[str]"]

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def check_writable(path: PathLike) -> int | None:
    """Refuse a target that must not be replaced; return its permission bits if it exists, else None.

    Call it before expensive work whose result goes to ``path`` (e.g. a
    compilation), so a bad target fails first; :func:`atomic_write_bytes` calls
    it again.

    Raises:
        OutputError: ``path`` is a folder, or an existing file without write
            permission (checked on the permission bits too, so that root is
            refused as well), or its parent is a file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{path}: a parent of this path is a file, not a folder") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot inspect the output path ({e.strerror or e})") from None
    if st is None:
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f"{path}: its parent {parent} is a file, not a folder")
                break
        return None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: is a folder; expected a file path to write")
    if not (st.st_mode & 0o222) or not os.access(path, os.W_OK):
        raise OutputError(
            f"{path}: the file exists and is read-only; refusing to replace it (make it writable or write elsewhere)"
        )
    return stat.S_IMODE(st.st_mode)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{path}: cannot create the folder {path.parent}: a file is in the way") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot create the folder {path.parent} ({e.strerror or e})") from None


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new temp file beside ``path``, created with mode 0o666 so the kernel applies the umask as open() does."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"{path}: cannot create a file in {path.parent} ({e.strerror or e})") from None
    raise OutputError(f"{path}: cannot create a temp file in {path.parent}: 100 names taken")


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename.

    Parent folders are created. Returns ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: the target is read-only or a folder, a file is in the way
            of its folder, or writing failed (e.g. disk full); nothing is left
            behind.
    """
    path = Path(path)
    keep_mode = check_writable(path)
    _make_parent(path)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if keep_mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), keep_mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, EdgeTPUError):
            raise OutputError(f"{path}: writing failed ({e.strerror or e}); the target was left as it was") from None
        raise
    return path
