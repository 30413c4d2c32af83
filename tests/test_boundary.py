"""The deployment side never needs TensorFlow; the packaging says what the issue asks."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_edgetpu_runs_a_model_without_importing_tensorflow(tmp_path, small_tflite, digits):
    model = tmp_path / "m.tflite"
    model.write_bytes(small_tflite["int8"])
    _, (x_test, _) = digits
    import numpy as np

    np.save(tmp_path / "x.npy", x_test[:4])
    code = textwrap.dedent(
        f"""
        import sys, numpy as np
        import edgetpu
        interp = edgetpu.make_interpreter({str(model)!r}, num_threads=1)
        out = edgetpu.run(interp, np.load({str(tmp_path / 'x.npy')!r}))
        assert out.shape == (4, 10), out.shape
        edgetpu.classify(interp, np.load({str(tmp_path / 'x.npy')!r})[0])
        edgetpu.benchmark(interp, runs=3, warmup=1)
        edgetpu.check({str(model)!r})
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'keras_compress', 'tf_keras'))
        print('HEAVY', heavy)
        assert not heavy, heavy
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HEAVY []" in r.stdout


def test_edgetpu_sources_do_not_import_tensorflow():
    # tensorflow.lite is allowed only as the interpreter of last resort, imported by name at run time.
    bad = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|keras_compress|tf_keras)\b", re.M)
    for f in (ROOT / "edgetpu").rglob("*.py"):
        hits = bad.findall(f.read_text())
        assert not hits, f"{f.name} imports {hits}"


def test_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = cfg["options"]["install_requires"]
    assert "tensorflow>=2.16" in requires and "ai-edge-litert" in requires and "numpy" in requires
    assert "pycoral" not in (ROOT / "setup.cfg").read_text().lower()
    extras = cfg["options.extras_require"]
    assert "pytest" in extras["test"] and "tensorflow-model-optimization" in extras["bench"]
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert "keras-compress = keras_compress.cli:main" in scripts and "edgetpu = edgetpu.cli:main" in scripts


def test_console_scripts_are_installed():
    bindir = Path(sys.executable).parent
    for name in ("keras-compress", "edgetpu"):
        r = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage" in r.stdout, r.stderr
