"""Start-up that does not grow with the data: between the cache and the first optimizer step no row
is read but those a step or a preview uses, and an unchanged file is not read and checked again."""

from __future__ import annotations

import json
import os

import datasets.arrow_dataset
import pytest
from transformers import TrainerCallback

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.cache_entry import tokenize_split
from trainer.data.encoding import example_lengths
from trainer.data.fingerprint import fingerprint
from trainer.data.split import load_record_split
from trainer.engine import TrainerEngine
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)
RECORDS = 400
# A step reads a batch, a preview its prompts: far fewer rows than the data holds.
FEW_ROWS = RECORDS // 10


class RowsRead:
    """Counts the rows `datasets` turns into Python, NumPy or torch objects: every read of a row
    or a column through a `Dataset` (indexing, iteration, batches, map, filter) formats a table."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        format_table = datasets.arrow_dataset.format_table

        def counted(table, *arguments, **options):
            self.rows += table.num_rows
            return format_table(table, *arguments, **options)

        monkeypatch.setattr(datasets.arrow_dataset, "format_table", counted)


class RowsAtFirstStep(TrainerCallback):
    def __init__(self, counter: RowsRead) -> None:
        self.counter, self.rows = counter, None

    def on_step_end(self, args, state, control, **kwargs):
        if self.rows is None:
            self.rows = self.counter.rows


def write_conversations(path, count: int):
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"What is {n} plus {n}?"},
                {"role": "assistant", "content": str(2 * n)},
            ]
        }
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "batching", [[], ["data.packing=true", "data.tokens_per_batch=512"]], ids=["padded", "token-budget"]
)
def test_a_cached_run_reads_only_the_rows_of_its_first_step_and_previews(make_config, tmp_path, monkeypatch, batching):
    data = write_conversations(tmp_path / "chats.jsonl", RECORDS)
    overrides = [
        f"data.train={data}", "data.validation_split=0", "data.max_length=512", "train.max_steps=1",
        f"data.cache_dir={tmp_path / 'cache'}", *batching,
    ]  # fmt: skip
    assert TrainerEngine().run_job(make_config(*overrides, f"run.output_dir={tmp_path / 'first'}")).success
    counter = RowsRead(monkeypatch)
    first_step = RowsAtFirstStep(counter)
    cached = TrainerEngine(callbacks=[first_step]).run_job(
        make_config(*overrides, f"run.output_dir={tmp_path / 'cached'}")
    )
    assert cached.success
    assert first_step.rows is not None and first_step.rows <= FEW_ROWS, f"{first_step.rows} of {RECORDS} rows read"


def test_an_unchanged_file_is_not_read_again_and_a_changed_one_is(tmp_path, monkeypatch):
    data = write_conversations(tmp_path / "chats.jsonl", 50)
    config = DataConfig(train=str(data), validation_split=0, cache_dir=str(tmp_path / "cache"))
    first = load_record_split(config, PROFILE, seed=0)

    def no_reading(*arguments):
        raise AssertionError("the records were read again")

    with monkeypatch.context() as patched:
        patched.setattr("trainer.data.checking.iter_json_lines", no_reading)
        again = load_record_split(config, PROFILE, seed=0)
    assert again.train.digest == first.train.digest and list(again.train) == list(first.train)

    # Same size, same modification time, other content: read and checked again.
    times = data.stat()
    data.write_text(data.read_text(encoding="utf-8").replace("What is 7 plus", "What is 8 plus"), encoding="utf-8")
    os.utime(data, ns=(times.st_atime_ns, times.st_mtime_ns))
    changed = load_record_split(config, PROFILE, seed=0)
    assert changed.train.digest != first.train.digest
    assert changed.train[7][1].example["messages"][0]["content"] == "What is 8 plus 7?"


def test_token_counts_come_from_the_offsets_not_the_tokens(tmp_path, monkeypatch):
    data = write_conversations(tmp_path / "chats.jsonl", 60)
    config = DataConfig(train=str(data), validation_split=0, cache_dir=str(tmp_path / "cache"))
    split = load_record_split(config, PROFILE, seed=0)
    tokenized = tokenize_split(split, PROFILE, "", build_tokenizer(512), 512, tmp_path / "cache")
    selected = tokenized.train.select(range(59, 0, -3))
    expected = [len(row["input_ids"]) for row in selected]
    counter = RowsRead(monkeypatch)
    assert example_lengths(selected).tolist() == expected
    assert counter.rows == 0


def test_the_data_digest_of_an_unchanged_file_is_remembered_and_a_changed_file_is_hashed_again(tmp_path, monkeypatch):
    data = write_conversations(tmp_path / "chats.jsonl", 20)
    first = fingerprint(data, tmp_path / "cache")
    with monkeypatch.context() as patched:
        patched.setattr("trainer.data.fingerprint.content_sha256", lambda *arguments: pytest.fail("hashed again"))
        assert fingerprint(data, tmp_path / "cache") == first
    data.write_text(data.read_text(encoding="utf-8").replace("plus 3?", "plus 4?"), encoding="utf-8")
    changed = fingerprint(data, tmp_path / "cache")
    assert changed["sha256"] == fingerprint(data)["sha256"] != first["sha256"]
