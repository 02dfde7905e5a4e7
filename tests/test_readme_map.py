"""The README's module map is the tree: every package and top-level module of src/trainer has its
entry, no entry names what does not exist, and a package described by its modules names each one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "trainer"
ENTRY = re.compile(r"^      (\S+?)(/?)\s{2,}(.*)$")


def module_map() -> dict[str, str]:
    """Each entry of the map (`cli/`, `engine.py`) with its description, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("    src/trainer/\n") : text.index("    bench/")].splitlines()[1:]
    entries: dict[str, str] = {}
    for line in block:
        if match := ENTRY.match(line):
            name = match.group(1) + match.group(2)
            entries[name] = match.group(3)
        else:
            entries[name] += " " + line.strip()
    return entries


def test_every_package_and_module_has_an_entry_and_every_entry_exists():
    tree = {f"{path.name}/" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    tree |= {path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    assert set(module_map()) == tree


def test_a_package_described_by_its_modules_names_each_of_them_and_only_those():
    described = 0
    for name, description in module_map().items():
        named = set(re.findall(r"\b(\w+\.py)\b", description))
        if not name.endswith("/") or not named:
            continue
        described += 1
        modules = {path.name for path in (PACKAGE / name).glob("*.py")} - {"__init__.py", "__main__.py"}
        assert named == modules, f"{name}: the map names {sorted(named - modules)}, misses {sorted(modules - named)}"
    assert described >= 4, "the map describes no package by its modules: the test would prove nothing"
