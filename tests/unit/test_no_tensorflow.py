"""The promise of tests/unit: collecting it (its conftests, plugins and every test module) imports no
TensorFlow and no Keras. Checked in a fresh Python, where nothing else could have imported them."""

import json
import os
import subprocess
import sys

from tests.support import REPO

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import json, sys
import pytest
collected = []
class Files:
    def pytest_collection_modifyitems(self, items):
        collected.extend(sorted({item.path.name for item in items}))
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", sys.argv[1]], plugins=[Files()])
print("JSON:" + json.dumps({"exit": int(code), "files": collected,
                            "imported": sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules)}))
"""


def test_unit_tests_import_no_tensorflow():
    modules = sorted(f for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    proc = subprocess.run([sys.executable, "-c", CHILD, HERE], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON:")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][5:])
    assert out["exit"] == 0, proc.stdout[-3000:]
    assert out["files"] == modules, "every unit test module must be collected"
    assert out["imported"] == [], f"collecting tests/unit imported {out['imported']}: move the module to tests/tf"
