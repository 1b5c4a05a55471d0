"""nanwatch's own core scenarios: checked against `expect` and against raw tfdbg2."""

import pytest

import tfdbg2_oracle
from expectations import check_location
from scenarios_core import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_core_scenario(cell, name):
    scenario = SCENARIOS[name]
    expect = scenario["expect"]
    result, report = cell.run(scenario["code"], setup=scenario.get("setup"))
    assert result.error_in_exec is None, result.error_in_exec
    data = report.to_dict()
    problems = check_location(data, expect)
    first = data["first_nonfinite"] or {}
    source = first.get("source") or {}
    if expect.get("source_cell") == "setup":
        # the setup ran as In[1], the watched cell as In[2]
        if source.get("cell") != 1:
            problems.append(f"source cell {source.get('cell')} is not the setup cell 1")
    if "data_source" in expect and (first.get("data") or {}).get("source") != expect["data_source"]:
        problems.append(f"data source {(first.get('data') or {}).get('source')!r} != {expect['data_source']!r}")
    if "array_rows" in expect and (first.get("data") or {}).get("array_rows") != expect["array_rows"]:
        problems.append(f"array rows {(first.get('data') or {}).get('array_rows')} != {expect['array_rows']}")
    if "variable" in expect and (first.get("data") or {}).get("variable") != expect["variable"]:
        problems.append(f"variable {(first.get('data') or {}).get('variable')!r} != {expect['variable']!r}")
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_core_scenario_agrees_with_tfdbg2(cell, name):
    """The op nanwatch names is the op raw tfdbg2 finds first (data origins: a data op)."""
    scenario = SCENARIOS[name]
    cells = [c for c in (scenario.get("setup"), scenario["code"]) if c]
    truth = tfdbg2_oracle.first_nonfinite(*cells)
    assert truth is not None, "raw tfdbg2 saw no non-finite tensor"
    result, report = cell.run(scenario["code"], setup=scenario.get("setup"))
    first = report.to_dict()["first_nonfinite"]
    assert first is not None
    if first["op_type"] is None:
        assert truth["op_type"] in tfdbg2_oracle.DATA_OPS, (truth, first)
    else:
        assert first["op_type"] == truth["op_type"], (truth, first)
