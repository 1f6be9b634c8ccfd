"""``benchmarks/ablation.py`` (paper 003, Tables 1 and 2): the rows and a ``--tiny`` run."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation.py"


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_default_rows_are_table_1s(ablation):
    settings = ablation.parse_args(["--out", "x"])
    assert ablation.rows(settings) == [
        ("paper_rgb", "paper", False), ("residual_rgb", "residual", False),
        ("dense_rgb", "dense", False), ("contextual_rgb", "contextual", False),
        ("unetpp_rgb", "unetpp", False), ("paper_points", "paper", True)]
    assert (settings.size, settings.filters, settings.levels, settings.batch_size) == (
        128, 16, 5, 32)
    crossed = ablation.parse_args(["--out", "x", "--variants", "paper,dense",
                                   "--points_variants", "paper,dense"])
    assert [name for name, *_ in ablation.rows(crossed)] == [
        "paper_rgb", "dense_rgb", "paper_points", "dense_points"]


def test_tiny_run_writes_both_tables(ablation, tmp_path):
    record = ablation.main(["--out", str(tmp_path), "--tiny", "--noprogress"])
    names = [r["name"] for r in record["results"]]
    assert names == ["paper_rgb", "paper_points"]
    for result in record["results"]:
        assert 0.0 <= result["crop"]["aIoU"] <= 1.0
        assert result["ms_per_instance"]["tf_function"] > 0
        assert result["params"] > 0
    table = (tmp_path / "ablation.md").read_text()
    assert "Table 1" in table and "Table 2" in table
    assert "| U-Net | RGB | " in table and "| U-Net | RGB + extreme points | " in table
    assert "Extreme points minus RGB only, aIoU points (paper: +3.7 for the U-Net): U-Net " \
        in table
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["name"] for r in saved["results"]] == names
    assert saved["settings"]["size"] == 32
    assert (tmp_path / "border_error.png").is_file()
    assert (tmp_path / "runs" / "paper_points" / "best.keras").is_file()
