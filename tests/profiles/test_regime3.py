"""regime3's data contract (SPEC §4): answer markers in all three cases, its system prompt, and the
well-formed-answer check previews use."""

from __future__ import annotations

from datetime import date

import pytest

from trainer.config.schema import ProfileConfig
from trainer.profiles import build_profile
from trainer.profiles.regime3 import is_well_formed_answer


@pytest.fixture
def profile():
    return build_profile(ProfileConfig(name="regime3"), seed=42)


def answer_of(profile, content: str) -> str:
    example = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": content}]}
    return profile.transform_example(example, 0, "SYS")["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("(add 2 3) = 5", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
        ("  (add 2 3) = 5\n", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
        ("steps... <<ANS_START>> 5", "steps... <<ANS_START>> 5 <<ANS_END>>"),
        ("5 <<ANS_END>>", "<<ANS_START>> 5 <<ANS_END>>"),
        ("a <<ANS_START>> 5 <<ANS_END>> b", "a <<ANS_START>> 5 <<ANS_END>> b"),
    ],
    ids=["neither", "neither-padded", "only-start", "only-end", "both"],
)
def test_assistant_answers_get_the_missing_markers(profile, content, expected):
    assert answer_of(profile, content) == expected


def test_user_turns_are_left_alone_and_the_system_prompt_is_replaced(profile):
    example = {
        "messages": [
            {"role": "system", "content": "old"},
            {"role": "user", "content": "(add 2 3)?"},
            {"role": "assistant", "content": "5"},
            {"role": "user", "content": "(mul 2 3)?"},
            {"role": "assistant", "content": "6"},
        ]
    }
    result = profile.transform_example(example, 0, "SYS")
    assert [message["content"] for message in result["messages"]] == [
        "SYS",
        "(add 2 3)?",
        "<<ANS_START>> 5 <<ANS_END>>",
        "(mul 2 3)?",
        "<<ANS_START>> 6 <<ANS_END>>",
    ]
    assert profile.transform_example(result, 1, "SYS") == result


def test_the_system_prompt_has_the_date_then_the_rules_and_the_example(profile):
    prompt = profile.render_system_prompt(None, date(2026, 11, 30))
    assert prompt.startswith("Current date: 2026-11-30.")
    positions = [
        prompt.index(phrase)
        for phrase in ["(op arg1 arg2)", "<<ANS_START>> and <<ANS_END>>", "step by step", "precise and concise"]
    ]
    assert positions == sorted(positions)
    assert prompt.endswith("<<ANS_START>> (add 2 3) = 5 <<ANS_END>>")


@pytest.mark.parametrize(
    ("text", "well_formed"),
    [
        ("<<ANS_START>> (add 2 3) = 5 <<ANS_END>>", True),
        ("reasoning... <<ANS_START>>5<<ANS_END>> trailing", True),
        ("(add 2 3) = 5", False),
        ("<<ANS_START>> 5", False),
        ("5 <<ANS_END>>", False),
        ("<<ANS_END>> 5 <<ANS_START>>", False),
        ("<<ANS_START>>   <<ANS_END>>", False),
    ],
)
def test_well_formed_answers_have_both_markers_in_order_around_an_answer(text, well_formed):
    assert is_well_formed_answer(text) is well_formed


def test_answers_that_would_stay_malformed_are_validation_problems(profile):
    example = {
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "<<ANS_END>> 5 <<ANS_START>>"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "  "},
        ]
    }
    assert profile.validate_example(example) == [
        "messages[1].content: no <<ANS_END>> marker after <<ANS_START>> "
        "(regime3 answers look like '<<ANS_START>> (add 2 3) = 5 <<ANS_END>>')",
        "messages[3].content: the answer between the markers is empty "
        "(regime3 answers look like '<<ANS_START>> (add 2 3) = 5 <<ANS_END>>')",
    ]


def test_regime3_has_no_logits_processors(profile):
    assert len(profile.build_logits_processors(tokenizer=None)) == 0
