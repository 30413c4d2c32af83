"""The run folder: every file a run writes is recorded in its ``manifest.json``.

A run writes only into its own folder, and records each file there as soon
as it is complete (files are written to a temp name and renamed). When a run
starts in a folder that holds an earlier run (its ``manifest.json``), the
files that run recorded are removed first, and the run says so: a
``summary.json`` never sits beside models from another run. A folder that
is not empty and has no manifest is not ours: the run refuses it rather than
mix its files with someone else's.

Example:
    >>> import tempfile, pathlib
    >>> from keras_compress.pipeline.rundir import RunFolder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> run = RunFolder(root / "out", "demo")
    >>> _ = run.write_bytes("tflite/a.tflite", b"TFL3")
    >>> run.files
    ['tflite/a.tflite']
    >>> again = RunFolder(root / "out", "other", progress=print)
    [run] removed the 1 file(s) of the earlier run of recipe 'demo' from ...out
    >>> (root / "out" / "tflite" / "a.tflite").exists()
    False
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgetpu import atomic_write_bytes
from keras_compress.errors import OutputError

__all__ = ["RunFolder", "MANIFEST"]

#: The file that records what a run folder holds.
MANIFEST = "manifest.json"


def _prepare(path: Path) -> None:
    """Create ``path`` as a folder, or fail with one clear line."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; expected a folder for the run's output")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path)
        raise OutputError(f"{path}: cannot create the output folder: {blocker} is a file") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the output folder is not writable")


class RunFolder:
    """The output folder of one run.

    Args:
        path: the folder (created if missing).
        recipe: the recipe's name, recorded in the manifest.
        progress: where the "removed the earlier run" line goes (default: nowhere).

    Raises:
        OutputError: ``path`` is a file, cannot be created or written, or is a
            non-empty folder without a manifest.
    """

    def __init__(self, path: str | os.PathLike, recipe: str, progress: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.recipe = recipe
        _prepare(self.path)
        self._clean_earlier_run(progress)
        self.files: list[str] = []
        self._write_manifest()

    def _inside(self, relative: str) -> Path | None:
        p = (self.path / relative).resolve()
        root = self.path.resolve()
        return p if p != root and root in p.parents else None

    def _clean_earlier_run(self, progress) -> None:
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            if any(self.path.iterdir()):
                raise OutputError(
                    f"{self.path}: not empty and not a keras-compress run folder (no {MANIFEST}); "
                    "choose a new or empty folder"
                )
            return
        try:
            earlier = json.loads(manifest.read_text())
            files = [f for f in earlier["files"] if isinstance(f, str)]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OutputError(f"{manifest}: unreadable manifest of an earlier run ({e}); remove the folder or choose another") from None
        removed = 0
        for rel in files:
            p = self._inside(rel)
            if p is not None and p.is_file():
                p.unlink()
                removed += 1
        for rel in sorted({str(Path(f).parent) for f in files if Path(f).parent != Path(".")}, key=len, reverse=True):
            p = self._inside(rel)
            if p is not None and p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        if progress is not None:
            progress(f"[run] removed the {removed} file(s) of the earlier run of recipe {earlier.get('recipe')!r} from {self.path}")

    def _write_manifest(self) -> None:
        data = {"recipe": self.recipe, "files": self.files}
        atomic_write_bytes(self.path / MANIFEST, (json.dumps(data, indent=2) + "\n").encode())

    def file(self, relative: str) -> Path:
        """The path of ``relative`` inside the folder (its parent folder created)."""
        p = self.path / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def record(self, relative: str | os.PathLike) -> None:
        """Add a file written in the folder to the manifest."""
        rel = os.path.relpath(Path(relative) if Path(relative).is_absolute() else self.path / relative, self.path)
        if rel not in self.files:
            self.files.append(rel)
            self._write_manifest()

    def write_bytes(self, relative: str, data: bytes) -> Path:
        """Write ``data`` atomically to ``relative`` and record it."""
        p = atomic_write_bytes(self.file(relative), data)
        self.record(relative)
        return p

    def save_model(self, relative: str, model: Any) -> Path:
        """``model.save`` to a temp name beside ``relative``, renamed once complete, recorded."""
        target = self.file(relative)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".keras", dir=target.parent)
        os.close(fd)
        try:
            model.save(tmp)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.record(relative)
        return target
