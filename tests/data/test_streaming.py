"""`data.streaming=true`: the examples of eager preparation, read and tokenized while training,
from a stream whose position a resume restores exactly."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from transformers import TrainerCallback

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.cache_entry import tokenize_split
from trainer.data.checking import checked_records
from trainer.data.loading import SAMPLE_DATA
from trainer.data.split import held_out_split, load_record_split
from trainer.data.streaming import stream_split
from trainer.data.tokenization import tokenize_with_assistant_mask
from trainer.engine import TrainerEngine
from trainer.errors import DataError
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)
# Short enough that some sample conversations are truncated and some lose every assistant token.
MAX_LENGTH = 28


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def stream_of(tokenizer, **data):
    config = DataConfig(**{"max_length": MAX_LENGTH, "validation_max_samples": 0, **data})
    return stream_split(held_out_split(config, PROFILE, 0), config, PROFILE, "Be brief.", tokenizer, seed=0).train


def one_by_one(tokenizer, pairs, max_length):
    """The examples of (index, record) pairs tokenized one at a time, those that keep an answer."""
    tokenized = [
        tokenize_with_assistant_mask(
            tokenizer, PROFILE.transform_example(record.example, index, "Be brief.")["messages"], max_length
        )
        for index, record in pairs
    ]
    return [example.input_ids for example in tokenized if example.has_assistant_tokens]


def as_pairs(examples):
    return [(example["input_ids"], example["labels"]) for example in examples]


def test_a_stream_in_file_order_hands_out_the_examples_of_eager_preparation_pass_after_pass(tokenizer, tmp_path):
    # data.validation names the file too, so the eager path keeps every record for training.
    split = load_record_split(DataConfig(validation=str(SAMPLE_DATA)), PROFILE, seed=0)
    eager = tokenize_split(split, PROFILE, "Be brief.", tokenizer, MAX_LENGTH, cache_dir=tmp_path)
    assert eager.stats["train_truncated"] > 0 and eager.stats["train_dropped"] > 0
    expected = list(zip(eager.train["input_ids"], eager.train["labels"], strict=True))

    streamed = as_pairs(islice(stream_of(tokenizer, shuffle_buffer=1), 2 * len(expected)))
    assert streamed == expected + expected


def test_each_pass_draws_every_example_once_in_an_order_seeded_per_pass(tokenizer):
    stream = stream_of(tokenizer, shuffle_buffer=1)
    in_order = as_pairs(islice(stream, 500))
    per_pass = max(handed_out for handed_out, position in stream.history if position.pass_number == 0)
    assert 2 * per_pass <= len(in_order)
    shuffled = as_pairs(islice(stream_of(tokenizer, shuffle_buffer=50), 2 * per_pass))
    first, second = shuffled[:per_pass], shuffled[per_pass:]
    assert sorted(map(repr, first)) == sorted(map(repr, second)) == sorted(map(repr, in_order[:per_pass]))
    assert first != in_order[:per_pass] and first != second
    assert as_pairs(islice(stream_of(tokenizer, shuffle_buffer=50), 2 * per_pass)) == shuffled


@pytest.mark.parametrize("stop", [0, 17, 250, 400])
def test_a_stream_restored_at_a_position_continues_as_the_uninterrupted_stream(tokenizer, stop):
    uninterrupted = stream_of(tokenizer, shuffle_buffer=50)
    reference = list(islice(uninterrupted, stop + 40))
    resumed = stream_of(tokenizer, shuffle_buffer=50)
    resumed.restore(uninterrupted.position_after(stop), stop)
    assert list(islice(resumed, 40)) == reference[stop:]


def test_the_validation_records_are_the_first_valid_ones_and_never_streamed(tokenizer):
    config = DataConfig(validation_max_samples=8, max_length=MAX_LENGTH)
    split = held_out_split(config, PROFILE, 0)
    assert [index for index, _ in split.validation] == list(range(8)) and split.first_indices == (8,)
    data = stream_split(split, config, PROFILE, "Be brief.", tokenizer, seed=0)
    assert data.validation["input_ids"] == one_by_one(tokenizer, split.validation, MAX_LENGTH)
    assert min(index for index, _ in data.train.draws(0)) == 8


@pytest.fixture
def bad_file(tmp_path):
    lines = SAMPLE_DATA.read_text().splitlines()[:20]
    lines[3] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    lines[9] = "{not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_record_stops_the_stream_with_the_eager_paths_message(tokenizer, bad_file):
    with pytest.raises(DataError) as eager:
        checked_records(str(bad_file), PROFILE)
    with pytest.raises(DataError) as streamed:
        list(islice(stream_of(tokenizer, train=str(bad_file), shuffle_buffer=1), 100))
    assert streamed.value.problems == eager.value.problems[:1]
    assert streamed.value.problems[0].startswith(f"{bad_file}:4 (example 3): no assistant turn")


def test_skipped_bad_records_leave_the_examples_of_the_valid_ones_and_are_counted(tokenizer, bad_file):
    kept, skipped = checked_records(str(bad_file), PROFILE, "skip")
    stream = stream_of(tokenizer, train=str(bad_file), on_bad_record="skip", shuffle_buffer=1, max_length=512)
    streamed = [example["input_ids"] for example in islice(stream, len(kept))]
    assert streamed == one_by_one(tokenizer, kept, 512) and len(streamed) == 18
    assert stream.stats["bad_records_skipped"] == skipped == 2


class RecordsReadAtFirstStep(TrainerCallback):
    def __init__(self):
        self.read = None

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        if self.read is None:
            self.read = train_dataloader.dataset.stats["stream_records_read"]


def test_training_starts_after_reading_a_prefix_of_a_large_file(make_config, tmp_path, caplog):
    big = tmp_path / "big.jsonl"
    lines = SAMPLE_DATA.read_text()
    big.write_text(lines * 50)
    total = 50 * len(lines.splitlines())
    config = make_config(
        f"data.train={big}", "data.streaming=true", "data.shuffle_buffer=100", "data.validation_max_samples=4",
        "train.max_steps=2", "train.per_device_train_batch_size=4", "train.eval_steps=100", "train.save_steps=100",
        "monitoring.tensorboard=false",
    )  # fmt: skip
    probe = RecordsReadAtFirstStep()
    with caplog.at_level("INFO"):
        result = TrainerEngine(callbacks=[probe]).run_job(config)
    assert result.success, result.error_message
    assert probe.read is not None and probe.read < total // 10 and total == 20000
    assert f"Streaming {big}: records are read, checked and tokenized as training needs them" in caplog.text
    tokenized = json.loads((tmp_path / "run" / "tokenized.json").read_text())
    assert tokenized["cache_key"] is None
