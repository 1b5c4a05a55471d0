"""Checks a report against a scenario's `expect` (the format of shared/zoo/scenarios.py)."""


def check_location(report: dict, expect: dict) -> list:
    """Mismatches of status / phase / first_op / layer / line_contains, as readable strings."""
    problems = []
    first = report["first_nonfinite"]
    if "status" in expect and report["status"] not in expect["status"]:
        problems.append(f"status {report['status']!r} not in {expect['status']}")
    if any(k in expect for k in ("phase", "first_op", "layer", "line_contains")) and first is None:
        return problems + ["no first_nonfinite"]
    if "phase" in expect and first["phase"] not in expect["phase"]:
        problems.append(f"phase {first['phase']!r} not in {expect['phase']}")
    if "first_op" in expect:
        want = expect["first_op"]
        if want is None and first["op_type"] is not None:
            problems.append(f"op {first['op_type']!r}, expected the data itself")
        elif want is not None and first["op_type"] not in want:
            problems.append(f"op {first['op_type']!r} not in {want}")
    if "layer" in expect and first["layer"] != expect["layer"]:
        problems.append(f"layer {first['layer']!r} != {expect['layer']!r}")
    if "line_contains" in expect:
        code = (first.get("source") or {}).get("code") or ""
        if expect["line_contains"] not in code:
            problems.append(f"line {code!r} lacks {expect['line_contains']!r}")
    return problems


def check_causes(report: dict, expect: dict) -> list:
    problems = []
    causes = [d["cause"] for d in report["diagnosis"]]
    if "cause" in expect and (not causes or causes[0] not in expect["cause"]):
        problems.append(f"top cause {causes[:1]} not in {expect['cause']}")
    if "any_cause" in expect:
        every = set(causes) | {w["cause"] for w in report["warnings"]}
        if not every & expect["any_cause"]:
            problems.append(f"none of {expect['any_cause']} among {sorted(every)}")
    if expect.get("status") == {"healthy"} and (report["diagnosis"] or report["warnings"]):
        problems.append(f"alarm on a healthy run: {report['diagnosis']} {report['warnings']}")
    return problems
