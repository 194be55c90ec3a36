"""Benchmark records carry the shared fields and are written atomically."""
from __future__ import annotations

import json

import pytest

from posedive_lib.benchmarking import REQUIRED_FIELDS, write_benchmark


def test_write_benchmark_record(tmp_path):
    path = write_benchmark("demo_rate", 12.5, "items/s", True, {"n": 3}, out_dir=tmp_path)
    record = json.loads(path.read_text())
    assert path.name == "demo_rate.json" and set(REQUIRED_FIELDS) <= set(record)
    assert record["value"] == 12.5 and record["details"] == {"n": 3} and "cores" in record["device"]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="plain file stem"):
        write_benchmark("a/b", 1, "x", True, {}, out_dir=tmp_path)
