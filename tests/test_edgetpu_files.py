"""edgetpu.atomic_write_bytes, the writer of both packages: umask, read-only targets, nothing half-written."""

from __future__ import annotations

import os
import stat

import pytest

import edgetpu
from edgetpu.errors import EdgeTPUError, OutputError
from edgetpu.files import atomic_write_bytes, check_writable


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)])
def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path, umask, mask, mode):
    umask(mask)
    p = atomic_write_bytes(tmp_path / "m.tflite", b"model")
    with open(tmp_path / "by_open", "wb") as f:
        f.write(b"x")
    assert _mode(p) == _mode(tmp_path / "by_open") == mode
    assert p.read_bytes() == b"model" and _leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    p = tmp_path / "summary.json"
    p.write_bytes(b"old")
    p.chmod(0o660)
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and _mode(p) == 0o660


def test_a_read_only_target_is_an_error_naming_it_and_is_left_alone(tmp_path):
    p = tmp_path / "keep.tflite"
    p.write_bytes(b"precious")
    p.chmod(0o444)
    with pytest.raises(OutputError, match=f"{p}: the file exists and is read-only; refusing to replace it"):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"precious" and _mode(p) == 0o444 and _leftovers(tmp_path) == []
    assert isinstance(OutputError("x"), OSError) and issubclass(OutputError, EdgeTPUError)


def test_folder_in_the_way_and_parent_that_is_a_file(tmp_path):
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(OutputError, match="is a folder; expected a file path"):
        atomic_write_bytes(tmp_path / "dir.tflite", b"x")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic_write_bytes(tmp_path / "file" / "m.tflite", b"x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "sub" / "m.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.tflite", "file"]


def test_parent_folders_are_created(tmp_path, umask):
    umask(0o022)
    p = atomic_write_bytes(tmp_path / "a" / "b" / "m.bin", b"x")
    assert p.read_bytes() == b"x" and _mode(tmp_path / "a") == 0o755


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_or_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, exc):
    p = tmp_path / "m.tflite"
    p.write_bytes(b"old")

    def fail(src, dst):
        raise exc

    monkeypatch.setattr(os, "replace", fail)
    expected = KeyboardInterrupt if exc is KeyboardInterrupt else OutputError
    with pytest.raises(expected) as e:
        atomic_write_bytes(p, b"new")
    if expected is OutputError:
        assert f"{p}: writing failed (No space left on device)" in str(e.value)
    assert p.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_public_name():
    assert edgetpu.atomic_write_bytes is atomic_write_bytes
