"""The golden model stays numpy-only: importing any golden module must not import Amaranth."""

import json
import pkgutil
import subprocess
import sys

import golden


def test_golden_modules_do_not_import_amaranth():
    names = sorted(f"golden.{module.name}" for module in pkgutil.iter_modules(golden.__path__))
    assert {"golden.precision", "golden.fixedpoint", "golden.terms", "golden.dpred"} <= set(names)
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == []
