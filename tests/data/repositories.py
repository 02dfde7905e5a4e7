"""A local dataset repository, laid out like a Hub one: two configurations (one gzip-compressed),
two splits each, and a README.md whose YAML header lists them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

README = """---
configs:
- config_name: chat
  default: true
  data_files:
  - {split: train, path: chat/train.jsonl}
  - {split: validation, path: chat/validation.jsonl}
- config_name: alpaca
  data_files:
  - {split: train, path: alpaca/train.jsonl.gz}
  - {split: validation, path: alpaca/validation.jsonl}
---
Two configurations, two splits each.
"""


def chat(split: str, number: int) -> dict:
    return {"messages": [{"role": "user", "content": f"chat {split} {number}"}, {"role": "assistant", "content": "ok"}]}


def alpaca(split: str, number: int) -> dict:
    return {"instruction": f"alpaca {split} {number}", "output": "done"}


def write_repository(root: Path) -> Path:
    for config, make, sizes in (("chat", chat, {"train": 12, "validation": 3}), ("alpaca", alpaca, {"train": 8, "validation": 2})):  # fmt: skip
        (root / config).mkdir(parents=True)
        for split, size in sizes.items():
            lines = "".join(json.dumps(make(split, number)) + "\n" for number in range(size))
            (root / config / f"{split}.jsonl").write_text(lines)
    train = root / "alpaca" / "train.jsonl"
    (root / "alpaca" / "train.jsonl.gz").write_bytes(gzip.compress(train.read_bytes()))
    train.unlink()
    (root / "README.md").write_text(README)
    return root
