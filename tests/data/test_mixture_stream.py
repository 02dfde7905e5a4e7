"""`data.streaming=true` over a mixture and over dataset repositories: each source is streamed on
its own, the next example comes from the source furthest below its weight's share of the
assistant tokens, and a resumed stream continues exactly where its checkpoint left it."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from tests.helpers import kill_at_checkpoint, losses_by_step, problems_of, read_json, resume
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.cache_entry import tokenize_split
from trainer.data.encoding import ROW_COUNTS
from trainer.data.mixture import SOURCE_COUNTS, tokenize_data_split
from trainer.data.split import held_out_split, load_data_split, load_record_split
from trainer.data.streaming import StreamPosition, stream_position, stream_split
from trainer.data.tokenization import IGNORE_INDEX
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)


def stream_of(train, tokenizer, seed=0, **data):
    config = DataConfig(
        **{"train": train, "max_length": 256, "validation_max_samples": 0, "shuffle_buffer": 50, **data}
    )
    return stream_split(held_out_split(config, PROFILE, seed), config, PROFILE, "Be brief.", tokenizer, seed=seed).train


def weighted(sources, *weights):
    return [{"path": str(path), "weight": weight} for path, weight in zip(sources, weights, strict=True)]


def assistant_tokens(example) -> int:
    return sum(label != IGNORE_INDEX for label in example["labels"])


def test_a_streamed_mixture_shares_the_assistant_tokens_as_weighted(sources, tiny_tokenizer):
    stream = stream_of(weighted(sources, 3, 1), tiny_tokenizer)
    examples = list(islice(stream, 6000))
    short, long = stream.position_after(len(examples)).learned
    assert short / long == pytest.approx(3.0, rel=0.01)
    assert short + long == sum(map(assistant_tokens, examples))
    # At every step, not only at the end: no source runs ahead of its share by more than one example.
    longest = max(map(assistant_tokens, examples))
    for handed_out in range(1, len(examples), 97):
        short, long = stream.position_after(handed_out).learned
        assert abs(short / 3 - long) <= longest


def test_a_streamed_mixture_is_the_same_for_the_same_seed(sources, tiny_tokenizer):
    first = list(islice(stream_of(weighted(sources, 1, 1), tiny_tokenizer), 300))
    again = list(islice(stream_of(weighted(sources, 1, 1), tiny_tokenizer), 300))
    other_seed = list(islice(stream_of(weighted(sources, 1, 1), tiny_tokenizer, seed=1), 300))
    assert first == again and first != other_seed


@pytest.mark.parametrize("stop", [0, 333, 2500])
def test_a_streamed_mixture_restored_from_a_checkpoint_continues_as_the_uninterrupted_one(
    sources, tiny_tokenizer, tmp_path, stop
):
    uninterrupted = stream_of(weighted(sources, 3, 1), tiny_tokenizer)
    reference = list(islice(uninterrupted, stop + 40))
    saved = StreamPosition(uninterrupted)
    saved.examples, saved.position = stop, uninterrupted.position_after(stop)
    # As the Trainer saves a checkpoint's callbacks, and reads them back.
    (tmp_path / "trainer_state.json").write_text(json.dumps({"stateful_callbacks": {"StreamPosition": saved.state()}}))
    resumed = stream_of(weighted(sources, 3, 1), tiny_tokenizer)
    stream_position(resumed, str(tmp_path), processes=1)
    assert list(islice(resumed, 40)) == reference[stop:]


def test_a_dataset_repository_streams_the_examples_of_eager_preparation(repository, tiny_tokenizer, tmp_path):
    train = {"path": str(repository), "subset": "alpaca"}
    # data.validation names another split, so the eager path keeps every record for training.
    validation = {**train, "split": "validation"}
    split = load_record_split(DataConfig(train=train, validation=validation), PROFILE, seed=0)
    eager = tokenize_split(split, PROFILE, "Be brief.", tiny_tokenizer, 256, cache_dir=tmp_path)
    streamed = list(islice(stream_of(train, tiny_tokenizer, shuffle_buffer=1), 2 * len(eager.train)))
    assert [example["input_ids"] for example in streamed] == 2 * list(eager.train["input_ids"])


def test_a_mixture_holds_out_a_share_of_the_validation_records_from_each_source(sources, repository, tiny_tokenizer):
    train = [{"path": str(sources[0]), "weight": 1}, {"path": str(repository), "weight": 1}]
    split = held_out_split(DataConfig(train=train, validation_max_samples=6), PROFILE, 0)
    assert split.first_indices == (3, 3) and len(split.validation) == 6
    stream = stream_of(train, tiny_tokenizer, validation_max_samples=6)
    assert [stream.first_index for stream in stream.streams] == [3, 3]


def test_eager_and_streamed_data_report_the_same_counts_per_set_and_per_source(sources, tiny_tokenizer):
    train = weighted(sources, 3, 1)
    config = DataConfig(train=train, validation_max_samples=8, max_length=256)
    eager = tokenize_data_split(load_data_split(config, PROFILE, 0), PROFILE, "Be brief.", tiny_tokenizer, 256)
    stream = stream_of(train, tiny_tokenizer)
    next(iter(stream))
    for name, stats in (("train", eager.stats), ("stream", stream.stats)):
        assert {f"{name}_{count}" for count in ROW_COUNTS} <= stats.keys()
    for eager_source, streamed_source in zip(eager.stats["sources"], stream.stats["sources"], strict=True):
        assert eager_source["name"] == streamed_source["name"]
        assert set(SOURCE_COUNTS) <= eager_source.keys() & streamed_source.keys()


def test_a_streamed_mixture_source_with_a_number_of_examples_is_refused_in_one_line(make_config, sources):
    mixture = f"data.train=[{{path: {sources[0]}, weight: 1}}, {{path: {sources[1]}, examples: 100}}]"
    assert problems_of(make_config(mixture, "data.streaming=true")) == [
        "data.train[1].examples: a streamed mixture mixes by weight (a stream has no end to count examples to); "
        "give the source a weight, or set data.streaming=false"
    ]


MIX_RUN = ["data.streaming=true", "data.validation_max_samples=4", "train.max_steps=6", "train.save_steps=3", "train.logging_steps=1", "train.eval_steps=100", "train.per_device_train_batch_size=8"]  # fmt: skip


@pytest.mark.long
@pytest.mark.slow
def test_a_streamed_mixture_killed_and_resumed_trains_on_the_same_examples_in_the_same_order(
    sources, repository, run_cli, model_cache, tmp_path
):
    short, _ = sources
    mixture = f"data.train=[{{path: {short}, weight: 3}}, {{path: {repository}, subset: chat, weight: 1}}]"
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    kill_at_checkpoint(model_cache, killed, 3, mixture, *MIX_RUN)
    saved = read_json(killed / "checkpoints" / "checkpoint-3" / "trainer_state.json")["stateful_callbacks"]
    assert saved["StreamPosition"]["attributes"]["examples"] == 24
    assert len(saved["StreamPosition"]["attributes"]["sources"]) == 2
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    completed = run_cli(mixture, *MIX_RUN, f"hydra.run.dir={reference}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    names = [account["name"] for account in read_json(reference / "result.json")["summary"]["sources"]]
    assert names == [str(short), f"{repository} (subset chat, split train)"]
    losses = losses_by_step(killed)
    assert [step for step, _ in losses] == list(range(1, 7))
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in losses_by_step(reference)], abs=1e-5)
