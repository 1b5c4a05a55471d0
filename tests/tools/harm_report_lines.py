"""Not a test: what nanwatch says about each harm scenario, one JSON line each, for a before/after table.

    NANWATCH_SRC=/path/to/another/checkout .venv/bin/python tests/tools/harm_report_lines.py [NAME ...]

Runs tests/scenarios/harm.py of this checkout as `%%nanwatch` cells (OPTS, default --no-panel) under the
nanwatch package found at NANWATCH_SRC (default: this checkout), e.g. a `git worktree` of an older commit.
"""
import json, os, sys, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = os.environ.get("NANWATCH_SRC", ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp())
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, ROOT)
from tests.scenarios.harm import SCENARIOS  # noqa
sys.path.pop(0)
for m in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
    del sys.modules[m]
sys.path.insert(0, src)
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
assert ip.run_cell("%load_ext nanwatch").success
import nanwatch
print("nanwatch from", nanwatch.__file__, file=sys.stderr)
only = sys.argv[1:] or list(SCENARIOS)
opts = os.environ.get("OPTS", "--no-panel")
for name in only:
    sc = SCENARIOS[name]
    import keras
    keras.mixed_precision.set_global_policy("float32"); keras.backend.clear_session()
    ip.reset(new_session=False)
    try:
        from nanwatch import session; session.reset()
    except Exception:
        pass
    if sc.setup:
        ip.run_cell(sc.setup)
    res = ip.run_cell(f"%%nanwatch {opts}\n" + sc.code.strip("\n"))
    d = nanwatch.last_report().to_dict()
    fn = d.get("first_nonfinite") or {}
    src_ = fn.get("source") or {}
    line = src_.get("line") if isinstance(src_, dict) else None
    causes = [c["cause"] for c in d.get("diagnosis") or []][:2]
    absorbed = sum(1 for i in d.get("info") or [] if "absorbed" in str(i))
    out = dict(name=name, status=d.get("status"), mode=d.get("mode"), op=fn.get("op_type") or fn.get("op"),
               phase=fn.get("phase"), line=line, causes=causes, absorbed_info=absorbed,
               error=None if res.error_in_exec is None else type(res.error_in_exec).__name__)
    print(json.dumps(out), flush=True)
    keras.mixed_precision.set_global_policy("float32"); keras.backend.clear_session()
