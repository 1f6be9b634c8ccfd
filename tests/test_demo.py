"""The main job, `dcme-keras demo --quick`, end to end on the embedded synthetic data."""

import json
import re
import subprocess
import sys

import pytest

from dcme_keras import demo
from dcme_keras.errors import UserInputError


@pytest.mark.slow
def test_quick_demo_writes_a_complete_report(tmp_path):
    workdir = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "demo", f"--workdir={workdir}",
         "--quick", "--threads=1"], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    report = (workdir / "report.md").read_text()
    for heading in ("## Stages", "## Extreme-points annotator", "## DCME instance segmentation",
                    "## Export parity", "## CPU benchmark"):
        assert heading in report
    assert "measured on synthetic data" in report
    assert "Table I (right)" in report and "Table V" in report
    assert "(not found in the log)" not in report and "was not written" not in report
    # Every figure the report links to exists.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(links) >= 6
    for link in links:
        assert (workdir / link).is_file(), link
    stages = json.loads((workdir / "stages.json").read_text())
    assert [s["stage"] for s in stages][:4] == ["synth", "build", "train_annotator",
                                               "train_dcme"]
    for q in ("int8", "float16"):
        for kind in ("annotator", "dcme"):
            assert (workdir / "export" / f"{kind}_{q}.tflite").is_file()


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(UserInputError, match="not a demo folder"):
        demo.run_demo(tmp_path, quick=True)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_plan_names_every_stage_of_the_issue():
    stages = demo.plan(demo.Path("/w"), demo.QUICK, threads=2)
    commands = [s.argv[0] for s in stages]
    for sub in ("synth", "build", "train", "evaluate", "export", "benchmark"):
        assert sub in commands
    exports = [s.argv for s in stages if s.argv[0] == "export"]
    assert sorted(a[2] for a in exports) == ["--quantization=float16"] * 2 + [
        "--quantization=int8"] * 2
