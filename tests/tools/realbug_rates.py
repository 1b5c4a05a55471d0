"""Detection, localisation, cause and fix-location rates of nanwatch over the ported real bugs.

Not a test: a tool. Runs every scenario of tests/scenarios/realbugs.py (SCENARIOS, then the fixed programs
FIXED) as a real `%%nanwatch` cell through the one scenario runner (tests/scenarios/runner.py) in an
IPython shell, scores each report with `score()` against FACTS, and prints one line per scenario and the
counts, beside DeepDiagnosis's published figures on its 53 real programs (ICSE 2022: detects 46,
localises 34, fix location 28).

    .venv/bin/python tests/tools/realbug_rates.py [--json]

What is counted (docs/real-bugs.md says the same):
  reproduces   raw TensorFlow 2.21 went non-finite in the port (FACTS, measured by
               tests/tools/measure_realbugs.py without nanwatch); the rates are out of these
  detected     the report's status is "nonfinite" (a NaN/Inf reported as such)
  localised    the report's first non-finite op is the one the check_numerics run named: its op type, and
               its cell line (FACTS "line") or, where the op was made inside Keras' fit, its layer (FACTS
               "layer")
  cause        the top diagnosis is one of FACTS "causes" (the cause ids that describe the developer's bug)
  fix location localised, and the top diagnosis's fix names the developer's fix (one of FACTS "fix_words")
A fixed program counts as right when its report is healthy.
"""

from __future__ import annotations

import json
import os
import sys

DEEPDIAGNOSIS = {"programs": 53, "detected": 46, "localised": 34, "fix_location": 28}


def score(report: dict, facts: dict) -> dict:
    """The four verdicts of one report (Report.to_dict()) against a scenario's FACTS entry."""
    first = report.get("first_nonfinite") or {}
    code = (first.get("source") or {}).get("code") or ""
    top = (report.get("diagnosis") or [{}])[0]
    detected = report["status"] == "nonfinite"
    localised = bool(detected and first.get("op_type") in facts.get("ops", ()) and (
        ("line" in facts and facts["line"] in code) or ("layer" in facts and first.get("layer") == facts["layer"])))
    cause = bool(detected and top.get("cause") in facts.get("causes", ()))
    fix_text = (top.get("fix") or "").lower()
    fix = bool(localised and any(w.lower() in fix_text for w in facts.get("fix_words", ())))
    return {"detected": detected, "localised": localised, "cause": cause, "fix_location": fix}


def rates(scores: dict, facts: dict) -> dict:
    """Counts over the reproducing buggy programs, and the fixed programs judged healthy."""
    buggy = [n for n, f in facts.items() if f.get("reproduces") and not f.get("fixed")]
    out = {"reproducing": len(buggy), "ported": sum(1 for f in facts.values() if not f.get("fixed"))}
    for key in ("detected", "localised", "cause", "fix_location"):
        out[key] = sum(1 for n in buggy if n in scores and scores[n][key])
    fixed = [n for n, f in facts.items() if f.get("fixed")]
    out["fixed"] = len(fixed)
    out["fixed_healthy"] = sum(1 for n in fixed if n in scores and scores[n]["healthy"])
    return out


def main(argv: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tests.scenarios.realbugs import FACTS, FIXED, SCENARIOS
    from tests.scenarios.runner import ScenarioRunner
    from tests.support.ipython import nanwatch_shell

    runner = ScenarioRunner(nanwatch_shell())
    scores = {}
    for name, scenario in {**SCENARIOS, **FIXED}.items():
        report = runner.report(scenario).to_dict()
        s = score(report, FACTS.get(name, {}))
        s["healthy"] = report["status"] == "healthy"
        first = report["first_nonfinite"] or {}
        s["says"] = {"status": report["status"], "op": first.get("op_type"), "phase": first.get("phase"),
                     "layer": first.get("layer"), "line": (first.get("source") or {}).get("code"),
                     "cause": (report["diagnosis"] or [{}])[0].get("cause"),
                     "fix": ((report["diagnosis"] or [{}])[0].get("fix") or "")[:160]}
        scores[name] = s
        print(json.dumps({"name": name, **s}) if "--json" in argv else
              f"{name:34} {s['says']['status']:9} op={s['says']['op']} layer={s['says']['layer']} "
              f"cause={s['says']['cause']} | detected={s['detected']} localised={s['localised']} "
              f"cause_ok={s['cause']} fix={s['fix_location']}", flush=True)
    r = rates(scores, FACTS)
    n = r["reproducing"]
    print(f"\nported {r['ported']} buggy programs, {n} go non-finite on TF 2.21 / Keras 3 (raw, measured)")
    for key in ("detected", "localised", "cause", "fix_location"):
        dd = DEEPDIAGNOSIS.get(key)
        print(f"  {key:13} nanwatch {r[key]}/{n}" + (f"   DeepDiagnosis {dd}/{DEEPDIAGNOSIS['programs']}" if dd else ""))
    print(f"  fixed programs healthy: {r['fixed_healthy']}/{r['fixed']}")


if __name__ == "__main__":
    main(sys.argv[1:])
