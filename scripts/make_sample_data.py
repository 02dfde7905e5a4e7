"""Write the sample chat data shipped with trainer: arithmetic a tiny model can visibly learn.

Deterministic: running it again writes the same bytes. Usage: python scripts/make_sample_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUTPUT = Path(__file__).parents[1] / "src" / "trainer" / "data" / "sample" / "arithmetic.jsonl"
NUM_EXAMPLES = 400
SEED = 1234

OPERATIONS = {
    "add": ("+", "plus", lambda a, b: a + b),
    "sub": ("-", "minus", lambda a, b: a - b),
    "mul": ("*", "times", lambda a, b: a * b),
}
QUESTIONS = [
    "What is {a} {word} {b}?",
    "Compute {a} {sign} {b}.",
    "How much is {a} {sign} {b}?",
    "Evaluate ({op} {a} {b}).",
]


def make_turn(rng: random.Random) -> tuple[str, str]:
    op = rng.choice(sorted(OPERATIONS))
    sign, word, apply = OPERATIONS[op]
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    question = rng.choice(QUESTIONS).format(a=a, b=b, op=op, sign=sign, word=word)
    answer = f"({op} {a} {b}) = {apply(a, b)}" if question.startswith("Evaluate") else f"{a} {sign} {b} = {apply(a, b)}"
    return question, answer


def make_example(rng: random.Random) -> dict:
    # One in eight is a two-turn conversation, so multi-turn handling is exercised by the default run.
    messages = []
    for _ in range(2 if rng.random() < 0.125 else 1):
        question, answer = make_turn(rng)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def main() -> None:
    rng = random.Random(SEED)
    lines = [json.dumps(make_example(rng), ensure_ascii=False) for _ in range(NUM_EXAMPLES)]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} examples to {OUTPUT}")


if __name__ == "__main__":
    main()
