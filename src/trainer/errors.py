"""Errors a user can fix: reported as one clear message, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's config, data or environment, not a bug in trainer."""

    error_type = "user_error"


class ConfigError(UserError):
    """Every problem found in a config, gathered so the user can fix them all at once."""

    error_type = "config_error"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(describe_problems("Invalid configuration", problems))


class DataError(UserError):
    """Every bad record or unreadable file found in the data, listed with its location."""

    error_type = "data_error"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(describe_problems("Invalid data", problems, shown=MAX_REPORTED_PROBLEMS))


class DiskFullError(UserError):
    """The disk (or the user's quota) filled while the run wrote to it: space freed, it resumes."""

    error_type = "disk_full"


class NotARunError(UserError):
    """A path given as a run directory holds no readable status.json of trainer."""

    error_type = "not_a_run"


class NothingToReview(Exception):
    """PATH holds no TensorBoard event files (`python -m trainer.review` says so and exits 2)."""


# Enough to show a pattern without burying the user in a wall of lines.
MAX_REPORTED_PROBLEMS = 20


def describe_problems(title: str, problems: list[str], shown: int | None = None) -> str:
    """One line for a single problem; a header and one bullet per problem otherwise."""
    if len(problems) == 1:
        return f"{title}: {problems[0]}"
    listed = problems[:shown]
    lines = "\n".join(f"  - {problem}" for problem in listed)
    more = f"\n  ... and {len(problems) - len(listed)} more" if len(listed) < len(problems) else ""
    return f"{title} ({len(problems)} problems):\n{lines}{more}"


def first_line(error: BaseException) -> str:
    """The headline of an error's message (libraries append details on further lines)."""
    return next(iter(str(error).strip().splitlines()), type(error).__name__)
