"""The shared conformance cases (tests/conformance/graphs.yaml), copied from ../shared."""

from pathlib import Path

import pytest
import yaml
from graphs import graph, parse_edges

from littleflow import FlowError, compile_flow

CASES = yaml.safe_load((Path(__file__).parent / "conformance" / "graphs.yaml").read_text())


@pytest.mark.parametrize("case", [c for c in CASES if "edges" in c], ids=lambda c: c["name"])
def test_graph(case):
    assert graph(compile_flow(case["flow"])) == parse_edges(case["edges"])


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c], ids=lambda c: c["name"])
def test_error(case):
    expected = case["error"]
    with pytest.raises(FlowError) as caught:
        compile_flow(case["flow"])
    error = caught.value
    assert error.line == expected["line"]
    if "column" in expected:
        assert error.column == expected["column"]
    assert expected["contains"].lower() in error.message.lower()
