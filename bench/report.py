"""Medians, spreads and ratios of repeated measurements, printed and written as JSON and as the
Markdown table of bench/RESULTS.md."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def show(self, digits: int = 0) -> str:
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}..{self.high:,.{digits}f})"


@dataclass(frozen=True)
class Target:
    name: str
    measured: Spread
    bound: float
    at_least: bool = True  # False: the measured median must stay at or below the bound
    unit: str = "x"

    @property
    def holds(self) -> bool:
        return self.measured.median >= self.bound if self.at_least else self.measured.median <= self.bound

    def to_dict(self) -> dict:
        return {**asdict(self), "holds": self.holds}

    def show(self, digits: int = 2) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "holds" if self.holds else "MISSED"
        return (
            f"{self.name}: {self.measured.show(digits)}{self.unit}  target {sign} {self.bound:g}{self.unit}  {verdict}"
        )


def print_tables(rows: list[tuple[str, str]], targets: list[Target]) -> None:
    for name, value in rows:
        print(f"{name}: {value}")
    for target in targets:
        print(target.show())


def per_round_ratios(numerators: list[float], denominators: list[float]) -> Spread:
    """Each round's ratio, then their spread: rounds run back to back, so drift of the machine
    between rounds cancels within each ratio."""
    return Spread.of([a / b for a, b in zip(numerators, denominators, strict=True)])


def ratio_row(name: str, numerators: list[float], denominators: list[float]) -> tuple[str, str]:
    """A table row of per-round ratios."""
    return name, per_round_ratios(numerators, denominators).show(2) + "x"


def results_markdown(header: str, rows: list[tuple[str, str]], targets: list[Target]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (see `bench/__main__.py`); medians over rounds, (low..high) in brackets.",
        "",
        header,
        "",
    ]
    return "\n".join(lines) + tables_markdown(rows, targets)


def tables_markdown(rows: list[tuple[str, str]], targets: list[Target]) -> str:
    """The measures, then the targets with whether each holds."""
    lines = ["| measure | value |", "| --- | --- |", *[f"| {name} | {value} |" for name, value in rows], ""]
    lines += ["| target | measured | bound | holds |", "| --- | --- | --- | --- |"]
    for target in targets:
        sign = ">=" if target.at_least else "<="
        measured = f"{target.measured.show(2)}{target.unit}"
        lines.append(
            f"| {target.name} | {measured} | {sign} {target.bound:g}{target.unit} | {'yes' if target.holds else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def section_of(document: str, title: str) -> str | None:
    """The body of `document`'s `## title` section, or None."""
    _, found, after = document.partition(f"## {title}\n")
    return after.split("\n## ")[0] if found else None


def with_section(document: str, title: str, section: str) -> str:
    """`document` with its `## title` section (up to the next `## ` heading) replaced by `section`,
    or `section` appended: each benchmark rewrites its own part of RESULTS.md only."""
    heading = f"## {title}\n"
    before, found, after = document.partition(heading)
    rest = after[after.index("\n## ") + 1 :] if found and "\n## " in after else ""
    return before.rstrip("\n") + "\n\n" + heading + "\n" + section.strip("\n") + "\n" + ("\n" + rest if rest else "")
