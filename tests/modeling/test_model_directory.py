"""A local model directory is checked before anything loads: config, weights and tokenizer present
and readable; a tokenizer that encodes text to nothing is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer.config.schema import ModelConfig
from trainer.config.validate import model_directory_problems
from trainer.errors import UserError
from trainer.modeling.loading import load_tokenizer
from trainer.modeling.tiny import tiny_model_dir
from trainer.run.outcome import EXIT_USER_ERROR


@pytest.fixture
def model_dir(model_cache: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model, laid out as a downloaded pretrained model is."""
    return Path(shutil.copytree(tiny_model_dir(ModelConfig(cache_dir=str(model_cache))), tmp_path / "model"))


def remove_tokenizer_files(directory: Path) -> None:
    for file in directory.iterdir():
        if file.name.startswith("tokenizer") or file.suffix == ".jinja":
            file.unlink()


def test_a_complete_model_directory_has_no_problems(model_dir):
    assert model_directory_problems(model_dir) == []


def test_a_directory_without_tokenizer_files_is_refused(model_dir):
    remove_tokenizer_files(model_dir)
    assert model_directory_problems(model_dir) == [
        "holds no tokenizer (none of tokenizer.json, tokenizer.model, spiece.model, vocab.json, vocab.txt)"
    ]


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[: len(data) // 2], lambda data: b"garbage", lambda data: data[:8] + b"x" * 64],
    ids=["truncated", "garbage", "bad header"],
)
def test_a_corrupt_safetensors_file_is_named(model_dir, damage):
    weights = model_dir / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    (problem,) = model_directory_problems(model_dir)
    assert problem.startswith("has a weights file model.safetensors that is not readable safetensors (")


def test_a_missing_or_broken_config_is_named(model_dir):
    (model_dir / "config.json").write_text("{not json")
    (problem,) = model_directory_problems(model_dir)
    assert problem.startswith("has a config.json that cannot be read (")
    (model_dir / "config.json").unlink()
    assert model_directory_problems(model_dir) == ["has no config.json"]


def test_a_tokenizer_that_encodes_text_to_nothing_is_refused(model_dir):
    # Without its files transformers still builds the family's tokenizer, with an empty vocabulary.
    remove_tokenizer_files(model_dir)
    with pytest.raises(UserError, match="its tokenizer encodes text to no tokens at all"):
        load_tokenizer(str(model_dir), trust_remote_code=False)


def test_a_damaged_tokenizer_file_is_a_user_error(model_dir):
    (model_dir / "tokenizer.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(UserError, match="the tokenizer could not be loaded"):
        load_tokenizer(str(model_dir), trust_remote_code=False)


@pytest.mark.parametrize("damage", ["tokenizer", "weights"])
def test_the_cli_refuses_a_broken_model_directory_before_loading_it(run_cli, model_dir, tmp_path, damage):
    if damage == "tokenizer":
        remove_tokenizer_files(model_dir)
    else:
        (model_dir / "model.safetensors").write_bytes(b"garbage")
    completed = run_cli("model=qwen3-0.6b", f"model.path={model_dir}", cwd=tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    assert f"Invalid configuration: model.path={model_dir} " in output
    assert "Traceback" not in output
