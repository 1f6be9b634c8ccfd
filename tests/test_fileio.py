"""atomic_path / atomic_files: outputs appear together or not at all."""

import os

import pytest

from dcme_keras import fileio


def test_atomic_files_moves_every_file_into_place(tmp_path):
    targets = [tmp_path / "out" / "a.json", tmp_path / "out" / "b.json"]
    with fileio.atomic_files(targets) as tmps:
        for tmp, text in zip(tmps, ("a", "b")):
            tmp.write_text(text)
        assert not any(t.exists() for t in targets)
    assert [t.read_text() for t in targets] == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "b.json"]


def test_a_failure_in_the_block_leaves_nothing_not_even_new_folders(tmp_path):
    targets = [tmp_path / "new" / "deep" / "a.json", tmp_path / "new" / "deep" / "b.json"]
    with pytest.raises(RuntimeError, match="injected"):
        with fileio.atomic_files(targets) as tmps:
            tmps[0].write_text("a")
            raise RuntimeError("injected after the first file")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_moving_removes_the_files_already_moved(tmp_path, monkeypatch):
    old = tmp_path / "kept.json"
    old.write_text("old")
    targets = [tmp_path / "new.json", old, tmp_path / "third.json"]
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("injected: disk full")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"):
        with fileio.atomic_files(targets) as tmps:
            for tmp in tmps:
                tmp.write_text("new")
    # The new file is undone; a file that existed is replaced, never deleted.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


def test_the_same_target_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        with fileio.atomic_files([tmp_path / "a", tmp_path / "a"]):
            pass


def test_atomic_path_replaces_a_directory(tmp_path):
    target = tmp_path / "frames"
    (target / "stale").mkdir(parents=True)
    with fileio.atomic_path(target) as tmp:
        (tmp / "fresh").mkdir(parents=True)
    assert [p.name for p in target.iterdir()] == ["fresh"]
