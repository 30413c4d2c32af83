"""The README's Python quickstart runs as written; its two commands are what .ci/run runs (ruff included)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path):
    block = re.search(r"<!-- quickstart:.*?-->\s*```python\n(.*?)```", README, re.S)
    assert block, "README lost its quickstart block"
    r = subprocess.run([sys.executable, "-c", block.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"int8: ([\d.]+)% accuracy", r.stdout)
    assert m and float(m.group(1)) > 80, r.stdout
    assert "CONV_2D" in r.stdout  # the Edge TPU check table
    assert (tmp_path / "digits_int8.tflite").exists()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(command) == 1
    assert command[0].strip() in README
    assert "ruff check ." in command[0] and command[0].index("ruff check") < command[0].index("pytest")
    assert " -m " not in command[0].split("pytest", 1)[1]  # the README's command runs every test, slow ones too
    assert README.count("python3 -m venv .venv && ") == 2  # exactly the two set-up commands


def test_ruff_passes():
    """The ruff configuration in pyproject.toml holds for the whole tree (the test command runs it too)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' installs it")
    r = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]


@pytest.mark.slow
def test_every_python_block_runs_in_order(tmp_path):
    """The pruning, QAT and distillation snippets use the API as it is (on a slice of the data)."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 4
    glue = (
        # After the quickstart: less data so the snippets' epochs take seconds, and the two
        # models the distillation snippet names (the quickstart's model is the teacher).
        "x_train, y_train = x_train[:192], y_train[:192]\n"
        "teacher = model\n"
        "small_model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3, activation='relu'),"
        " keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])\n"
    )
    code = blocks[0] + glue + "\n".join(blocks[1:]) + "\nprint('ALL BLOCKS RAN')\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ALL BLOCKS RAN" in r.stdout
