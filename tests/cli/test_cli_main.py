"""The dcme-keras dispatcher: help, unknown subcommands, and its import cost."""

import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    out = _run("--help")
    assert out.returncode == 0
    for sub in ("synth", "train", "evaluate", "export", "benchmark", "annotate", "demo"):
        assert f"  {sub}" in out.stdout


def test_unknown_subcommand_fails_with_one_line_reason():
    out = _run("frobnicate")
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == "dcme-keras: error: unknown subcommand 'frobnicate'"


def test_help_does_not_import_tensorflow():
    code = ("import sys; from dcme_keras.cli import main\n"
            "try:\n    main.run(['dcme-keras', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False")


def test_subcommand_help_lists_its_own_flags():
    out = _run("build", "--help")
    assert out.returncode == 0
    assert "--manual_dir" in out.stdout and "--data_dir" in out.stdout
