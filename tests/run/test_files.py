"""staged_directory(): a directory appears whole under its name, or not at all."""

from __future__ import annotations

import pytest

from trainer.run.files import staged_directory


def test_a_completed_block_renames_its_directory_into_place_and_leaves_no_scratch(tmp_path):
    target = tmp_path / "model"
    with staged_directory(target) as scratch:
        (scratch / "weights").write_text("w")
        assert not target.exists()
    assert (target / "weights").read_text() == "w"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_a_failed_block_leaves_neither_the_target_nor_its_scratch(tmp_path):
    with pytest.raises(KeyboardInterrupt), staged_directory(tmp_path / "model") as scratch:
        (scratch / "weights").write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_target_put_in_place_first_is_kept_unless_replaced(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("first")
    with pytest.raises(OSError), staged_directory(target) as scratch:
        (scratch / "weights").write_text("second")
    assert (target / "weights").read_text() == "first"
    with staged_directory(target, replace=True) as scratch:
        (scratch / "weights").write_text("second")
    assert (target / "weights").read_text() == "second"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_a_named_scratch_is_the_directory_renamed(tmp_path):
    scratch = tmp_path / ".staging" / "checkpoint-4"
    with staged_directory(tmp_path / "checkpoint-4", scratch=scratch) as staged:
        assert staged == scratch and scratch.is_dir()
        (staged / "manifest.json").write_text("{}")
    assert (tmp_path / "checkpoint-4" / "manifest.json").is_file() and not scratch.exists()
