"""Reading a recipe file: YAML or JSON text, with one clear error for every way it can fail.

Example:
    >>> import pathlib, tempfile
    >>> from keras_compress.recipes.files import read_recipe_file
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.yaml"
    >>> _ = p.write_bytes(b"name: caf\\xe9\\n")
    >>> read_recipe_file(p)
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: ...r.yaml: not UTF-8 text (byte 0xe9 at offset 9)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keras_compress.errors import ConfigError

__all__ = ["read_recipe_file", "resolve_relative", "SUFFIXES"]

SUFFIXES = (".yaml", ".yml", ".json")


def _text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"recipe file {str(path)!r} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a recipe file ({', '.join(SUFFIXES)})")
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"recipe file {str(path)!r}: expected a .yaml, .yml or .json file; got {path.suffix or 'no suffix'!r}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the recipe ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def resolve_relative(path: str, base_dir: str | Path | None) -> str:
    """``path`` if it exists from the current folder (or is absolute), else relative to ``base_dir`` (a recipe's folder).

    Example:
        >>> resolve_relative("/abs/model.keras", "/recipes")
        '/abs/model.keras'
    """
    if os.path.exists(path) or os.path.isabs(path) or base_dir is None:
        return path
    candidate = Path(base_dir) / path
    return str(candidate) if candidate.exists() else path


def read_recipe_file(path: Path) -> Any:
    """The data of a ``.yaml``/``.yml``/``.json`` recipe file.

    Raises:
        ConfigError: missing, a folder, another suffix, unreadable, not UTF-8,
            or not valid YAML/JSON; the message names the file.
    """
    text = _text(path)
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
