"""Every accepted record shape trains token-exact under real families' chat templates: Alpaca and
OpenAI content parts learn the rendered answer plus its end-of-turn, tool calls the template's
call text (the tool's output never), raw text every token plus the end-of-sequence token; and
compressed files are read as datasets reads them, through the same checks."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest

from tests.helpers import learned_text
from tests.template_families import family_tokenizer
from trainer.config.schema import ProfileConfig
from trainer.data.checking import checked_records
from trainer.data.encoding import tokenize_batch
from trainer.data.records import record_columns
from trainer.data.tokenization import TokenizedExample
from trainer.errors import DataError
from trainer.modeling.template_layout import TemplateError
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile
from trainer.profiles.regime3 import Regime3Profile

FAMILIES = ("qwen3", "llama-3.2")
SYSTEM = "Be brief."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_CALL = {
    "tools": [WEATHER_TOOL],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18 C, sunny"},
        {"role": "assistant", "content": "18 C and sunny."},
    ],
}
# What each family renders for the call above, and how it closes a turn (and opens the last answer).
CALL_TEXT = {
    "qwen3": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
    "llama-3.2": '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
}
END_OF_TURN = {"qwen3": "<|im_end|>", "llama-3.2": "<|eot_id|>"}
LAST_ANSWER_PREFIX = {"qwen3": "<think>\n\n</think>\n\n", "llama-3.2": ""}


def tokenized(tokenizer, records: list[dict], tmp_path, profile=None) -> list[TokenizedExample]:
    """`records` read from a file, checked and tokenized as a run prepares them."""
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    profile = profile or PlainProfile(ProfileConfig(), seed=0)
    pairs, _ = checked_records(str(path), profile)
    rows = tokenize_batch(record_columns(pairs), profile, SYSTEM, tokenizer, max_length=4096)
    return [
        TokenizedExample(ids.tolist(), labels.tolist(), truncated)
        for ids, labels, truncated in zip(rows["input_ids"], rows["labels"], rows["truncated"], strict=True)
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_an_alpaca_record_learns_its_output_as_the_answer_to_instruction_and_input(family, tmp_path):
    tokenizer = family_tokenizer(family)
    record = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "system": "ignored"}
    [example] = tokenized(tokenizer, [record], tmp_path)
    assert learned_text(tokenizer, example) == [LAST_ANSWER_PREFIX[family] + "5" + END_OF_TURN[family]]
    text = tokenizer.decode(example.input_ids)
    assert "Add the numbers.\n\n2 and 3" + END_OF_TURN[family] in text
    # Like a leading system message of `messages`, the record's is the run's system prompt.
    assert SYSTEM in text and "ignored" not in text


@pytest.mark.parametrize("family", FAMILIES)
def test_content_parts_are_trained_as_their_text_parts_joined(family, tmp_path):
    tokenizer = family_tokenizer(family)
    parts = [{"type": "text", "text": "First part."}, {"type": "text", "text": "Second part."}]
    question = [{"type": "text", "text": "Say two parts."}]
    record = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": parts}]}
    [example] = tokenized(tokenizer, [record], tmp_path)
    expected = LAST_ANSWER_PREFIX[family] + "First part.\nSecond part." + END_OF_TURN[family]
    assert learned_text(tokenizer, example) == [expected]


def test_a_non_text_part_is_refused_naming_it_and_its_place(tmp_path):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    record = {"messages": [{"role": "user", "content": [image]}, {"role": "assistant", "content": "A cat."}]}
    with pytest.raises(DataError) as raised:
        tokenized(build_tokenizer(512), [TOOL_CALL, record], tmp_path)
    [problem] = raised.value.problems
    assert problem.startswith(f"{tmp_path / 'data.jsonl'}:2 ")
    assert "messages[0].content[0] is a 'image_url' part" in problem


@pytest.mark.parametrize("family", FAMILIES)
def test_tool_calls_learn_the_call_text_and_the_answer_never_the_tool_output(family, tmp_path):
    tokenizer = family_tokenizer(family)
    [example] = tokenized(tokenizer, [TOOL_CALL], tmp_path)
    final = LAST_ANSWER_PREFIX[family] + "18 C and sunny." + END_OF_TURN[family]
    assert learned_text(tokenizer, example) == [CALL_TEXT[family], final]
    # The tools list reached the template: its definition is in the prompt, unlearned.
    assert "The weather in a city" in tokenizer.decode(example.input_ids)


def test_tool_calls_under_a_template_that_cannot_render_them_are_refused(tmp_path):
    with pytest.raises(TemplateError, match=r"data.jsonl:1 .*does not render tool calls"):
        tokenized(build_tokenizer(512), [TOOL_CALL], tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_raw_text_learns_every_token_and_the_end_of_sequence_without_a_template(family, tmp_path):
    tokenizer = family_tokenizer(family)
    text = "Continued pretraining reads plain prose.\nNo chat template wraps it."
    [example] = tokenized(tokenizer, [{"text": text, "source": "wiki"}], tmp_path)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert example.input_ids == expected
    assert example.labels == expected


def test_raw_text_and_tool_calls_are_refused_by_a_profile_that_rewrites_answers(tmp_path):
    profile = Regime3Profile(ProfileConfig(name="regime3"), seed=0)
    with pytest.raises(DataError) as raised:
        tokenized(build_tokenizer(512), [{"text": "prose"}, TOOL_CALL], tmp_path, profile)
    assert [problem.split(": ", 1)[1] for problem in raised.value.problems] == [
        f"{shape} records train as written, but profile=regime3 rewrites assistant answers; train them with profile=plain"
        for shape in ("raw 'text'", "tool-call")
    ]


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress], ids=["gz", "bz2", "xz"])
@pytest.mark.parametrize("layout", ["jsonl", "json"])
def test_compressed_files_are_read_and_checked_like_plain_ones(compress, layout, tmp_path):
    suffix = {gzip.compress: "gz", bz2.compress: "bz2", lzma.compress: "xz"}[compress]
    records = [{"text": "prose"}, {"instruction": "Say hi.", "output": "Hi."}, {"unknown": 1}]
    body = json.dumps(records) if layout == "json" else "".join(json.dumps(record) + "\n" for record in records)
    path = tmp_path / f"data.{layout}.{suffix}"
    path.write_bytes(compress(body.encode()))
    profile = PlainProfile(ProfileConfig(), seed=0)
    pairs, skipped = checked_records(str(path), profile, on_bad_record="skip")
    assert [index for index, _ in pairs] == [0, 1] and skipped == 1
    with pytest.raises(DataError, match=r"data\.json.*3.*expected 'messages'"):
        checked_records(str(path), profile)


def test_a_damaged_compressed_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "prose"}\n' * 100)[:-12])
    with pytest.raises(DataError, match=r"data\.jsonl\.gz cannot be decompressed"):
        checked_records(str(path), PlainProfile(ProfileConfig(), seed=0))
