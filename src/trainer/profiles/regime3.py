"""regime3: symbolic reasoning whose final answer sits between answer markers (SPEC §4)."""

from __future__ import annotations

from typing import Any

from trainer.profiles.base import Example, Profile

ANS_START = "<<ANS_START>>"
ANS_END = "<<ANS_END>>"

SYSTEM_PROMPT_TEMPLATE = f"""Current date: {{date}}.

You solve symbolic reasoning tasks. Rules:
1. Write every expression in canonical form: (op arg1 arg2).
2. Wrap the final answer in {ANS_START} and {ANS_END}.
3. Reason step by step.
4. Be precise and concise.

Example: What is 2 + 3?
{ANS_START} (add 2 3) = 5 {ANS_END}"""


def with_answer_markers(content: str) -> str:
    """The assistant content with both markers: the missing ones are added, present ones kept."""
    has_start, has_end = ANS_START in content, ANS_END in content
    if has_start and has_end:
        return content
    if has_start:
        return content.rstrip() + " " + ANS_END
    if has_end:
        return ANS_START + " " + content.lstrip()
    return f"{ANS_START} {content.strip()} {ANS_END}"


def answer_problem(text: str) -> str | None:
    """Why `text` has no well-formed marked answer, or None when it has one."""
    start = text.find(ANS_START)
    if start < 0:
        return f"no {ANS_START} marker"
    end = text.find(ANS_END, start + len(ANS_START))
    if end < 0:
        return f"no {ANS_END} marker after {ANS_START}"
    if not text[start + len(ANS_START) : end].strip():
        return "the answer between the markers is empty"
    return None


def is_well_formed_answer(text: str) -> bool:
    """Both markers, in order, around a non-empty answer: what previews report per answer."""
    return answer_problem(text) is None


class Regime3Profile(Profile):
    name = "regime3"
    rewrites_answers = True
    system_prompt_template = SYSTEM_PROMPT_TEMPLATE
    eval_metrics = (*Profile.eval_metrics, "well_formed_answer")

    def transform_example(self, example: Example, index: int, system_prompt: str) -> Example:
        result = super().transform_example(example, index, system_prompt)
        result["messages"] = [
            {**message, "content": with_answer_markers(message["content"])}
            if message["role"] == "assistant"
            else message
            for message in result["messages"]
        ]
        return result

    def preview_checks(self, answer: str) -> dict[str, bool]:
        return {"well_formed_answer": is_well_formed_answer(answer)}

    def score_answer(self, answer: str, reference: str) -> dict[str, bool]:
        return super().score_answer(answer, reference) | self.preview_checks(answer)

    def validate_example(self, example: Any) -> list[str]:
        """Beyond the chat shape: every assistant turn must end up with a well-formed answer, or
        the model would learn to emit broken markers."""
        if problems := super().validate_example(example):
            return problems
        return [
            f"messages[{position}].content: {problem} (regime3 answers look like '{ANS_START} (add 2 3) = 5 {ANS_END}')"
            for position, message in enumerate(example["messages"])
            if message["role"] == "assistant" and (problem := answer_problem(with_answer_markers(message["content"])))
        ]
