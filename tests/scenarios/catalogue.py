"""The one format of every scenario catalogue, and how a report is checked against a scenario.

A scenario is a notebook cell meant to run under `%%nanwatch OPTIONS` after an optional setup cell,
with its ground truth (`expect`) and how that truth was measured (`truth`, a key of TRUTH). The
catalogues (tests/scenarios/zoo.py, core.py, diagnosis.py) are dicts name -> Scenario, built by
`catalogue()`; tests/scenarios/runner.py runs a scenario once and hands its report to the checks
below (check_location, check_causes).

Keys of `expect` (all optional; a key that is absent is not checked):
  the origin (report["first_nonfinite"]):
    phase          acceptable values of first_nonfinite.phase (a set)
    first_op       acceptable op types of the culprit op (a set), or None: the data itself
    layer          the Keras layer name of the culprit (None: no layer)
    line_contains  text of the cell line that created the culprit op
    source_cell    "setup": the culprit line is in the setup cell (In[1]; the watched cell is In[2])
    data_source    first_nonfinite.data.source (e.g. "x[1]": the second input of a two-input model)
    array_rows     first_nonfinite.data.array_rows (rows of the user's array)
    variable       first_nonfinite.data.variable (the weight that held the NaN)
    forward_line_contains  text of a forward line that some report["info"] or report["run"]["notes"] line
                   must name: where the origin is in the backward pass (the where trap, a zero norm), the
                   forward line whose op's gradient made it
  the verdict:
    status         acceptable report statuses (a set); {"healthy"}: no diagnosis and no warning allowed
    cause          acceptable values of diagnosis[0].cause (a set)
    any_cause      one of these causes must appear among diagnosis[*].cause or warnings[*].cause
    absorbed       op types (a set) of origins of non-finite values that were absorbed on the way (masked by
                   tf.where, removed by minimum/maximum, exp(-inf) = 0, ...) and never reached the training:
                   some report["info"] line must contain "absorbed by" and one of them (as a word; "Const"
                   is also matched by the word "constant": eager code has no Const op for a Python -inf)
Cause ids are those of nanwatch.diagnosis.CAUSES (nanwatch/diagnosis/__init__.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any, Mapping

ORIGIN_KEYS = ("phase", "first_op", "layer", "line_contains")
DETAIL_KEYS = ("source_cell", "data_source", "array_rows", "variable", "forward_line_contains")
VERDICT_KEYS = ("status", "cause", "any_cause", "absorbed")
EXPECT_KEYS = ORIGIN_KEYS + DETAIL_KEYS + VERDICT_KEYS

# How a catalogue's `expect` was measured (Scenario.truth). TensorFlow 2.21 / Keras 3.15, CPU.
TRUTH = {
    "tfdbg2": "raw tfdbg2 (enable_dump_debug_info, FULL_HEALTH, no circular buffer): the first non-finite "
              "tensor by wall time; measured with the public scenarios and copied with them",
    "tfdbg2_oracle": "checked at every test run against raw tfdbg2 in the test process "
                     "(tests/scenarios/tfdbg2_oracle.py: the first op by wall time whose output held NaN/Inf "
                     "while its traced inputs were finite)",
    "check_numerics": "tests/tools/measure_scenarios.py: each scenario in fresh processes, once under "
                      "tf.debugging.enable_check_numerics() with inter-op parallelism 1 (CN: the first op that "
                      "raises), once plainly (plain: did the NaN reach the weights, History, predictions?); "
                      "`note` gives both results",
    "harm": "tests/tools/measure_harm.py: each scenario in three fresh processes, without nanwatch, inter-op "
            "parallelism 1: (a) plain, with sink hooks: did a non-finite value reach the training (a loss: "
            "tape.gradient targets and what Keras returns; a model output or predict result; the gradients or "
            "learning rate the optimizer applies; after the cell, every model weight, optimizer variable and "
            "Keras metric), the user's own non-finite variables and floats listed as bookkeeping, not sinks; "
            "(b) under tf.debugging.enable_check_numerics(): the first op that raises, its type and its cell "
            "line (innermost cell frame of its creation stack, or of the traceback for an eager op); (c) raw "
            "tfdbg2 FULL_HEALTH: every non-finite tensor in order, origins (finite inputs) marked, with cell "
            "lines and the variable writes they fed. Where (b)'s op is absorbed, `note` says which op's "
            "value reaches the sink and how that was reasoned from (a) and (c)",
    "realbugs": "tests/tools/measure_realbugs.py: each ported program in two fresh processes without nanwatch, "
                "inter-op parallelism 1: plain (the first step whose loss is non-finite, non-finite weights after "
                "the cell) and under tf.debugging.enable_check_numerics() (the first op that raises, its cell "
                "line); tests/scenarios/realbugs.py FACTS holds the results and the developer's fix",
}

CATALOGUES = {"zoo": "tests.scenarios.zoo", "core": "tests.scenarios.core", "diagnosis": "tests.scenarios.diagnosis",
              "realbugs": "tests.scenarios.realbugs"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    code: str                            # the watched cell, run as `%%nanwatch {options}`
    expect: Mapping[str, Any]            # keys: EXPECT_KEYS (module docstring)
    setup: str | None = None             # run plainly before the watched cell, in the same namespace
    options: str = "--no-panel"          # the magic's options
    note: str = ""                       # where the scenario comes from; what the measurement found
    truth: str = ""                      # how `expect` was measured: a key of TRUTH
    catalogue: str = ""                  # the catalogue it belongs to (set by catalogue())

    def __post_init__(self):
        unknown = set(self.expect) - set(EXPECT_KEYS)
        assert not unknown, f"{self.name}: unknown expect keys {sorted(unknown)}"
        assert not self.truth or self.truth in TRUTH, f"{self.name}: unknown truth {self.truth!r}"


def catalogue(name: str, truth: str, *scenarios: Scenario) -> dict[str, Scenario]:
    """name -> Scenario, in the given order; each stamped with the catalogue and (unless it has its own) truth."""
    out = {}
    for s in scenarios:
        assert s.name not in out, f"{name}: {s.name} twice"
        out[s.name] = dataclasses.replace(s, catalogue=name, truth=s.truth or truth)
    return out


def load(name: str) -> dict[str, Scenario]:
    """Every scenario of a catalogue (a key of CATALOGUES, or a module path), false alarms included."""
    module = importlib.import_module(CATALOGUES.get(name, name))
    return {**getattr(module, "SCENARIOS", {}), **getattr(module, "FALSE_ALARMS", {})}


def check_location(report: dict, expect: Mapping) -> list:
    """Mismatches of status and of the origin keys (ORIGIN_KEYS, DETAIL_KEYS), as readable strings."""
    problems = []
    first = report["first_nonfinite"]
    if "status" in expect and report["status"] not in expect["status"]:
        problems.append(f"status {report['status']!r} not in {expect['status']}")
    if any(k in expect for k in ORIGIN_KEYS) and first is None:
        return problems + ["no first_nonfinite"] + _detail_problems(report, expect)
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
    return problems + _detail_problems(report, expect)


def _detail_problems(report: dict, expect: Mapping) -> list:
    problems = []
    first = report["first_nonfinite"] or {}
    source = first.get("source") or {}
    data = first.get("data") or {}
    if expect.get("source_cell") == "setup":
        # the setup ran as In[1], the watched cell as In[2]
        if source.get("cell") != 1:
            problems.append(f"source cell {source.get('cell')} is not the setup cell 1")
    if "data_source" in expect and data.get("source") != expect["data_source"]:
        problems.append(f"data source {data.get('source')!r} != {expect['data_source']!r}")
    if "array_rows" in expect and data.get("array_rows") != expect["array_rows"]:
        problems.append(f"array rows {data.get('array_rows')} != {expect['array_rows']}")
    if "variable" in expect and data.get("variable") != expect["variable"]:
        problems.append(f"variable {data.get('variable')!r} != {expect['variable']!r}")
    if "forward_line_contains" in expect:
        lines = list(report.get("info") or []) + list((report.get("run") or {}).get("notes") or [])
        if not any(expect["forward_line_contains"] in line for line in lines):
            problems.append(f"no info or note line names the forward line {expect['forward_line_contains']!r}: {lines}")
    return problems


def check_causes(report: dict, expect: Mapping) -> list:
    """Mismatches of the verdict keys (cause, any_cause; no alarm at all where status is {"healthy"})."""
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
    if "absorbed" in expect:
        lines = [line for line in report.get("info") or [] if "absorbed by" in line]
        words = [r"Const|constant" if op == "Const" else re.escape(op) for op in expect["absorbed"]]
        if not any(re.search(rf"\b(?:{word})\b", line) for line in lines for word in words):
            problems.append(f"no info line says one of {sorted(expect['absorbed'])} was 'absorbed by': {report.get('info')}")
    return problems
