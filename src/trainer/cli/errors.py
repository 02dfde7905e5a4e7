"""How `python -m trainer` ends on an error: exit 2 and one actionable line for a user's mistake,
wherever it is found (Hydra's command line and composition, validation, data, the file system);
exit 1 and one line for a crash, its traceback kept in a file.

Hydra's own `run_and_report` prints a trimmed traceback and exits 1 for every error, its
composition errors included; with HYDRA_FULL_ERROR=1 it re-raises them to us instead.
This module imports no torch or transformers: `--help` and `--cfg job` stay fast.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from trainer.errors import UserError, first_line
from trainer.run.outcome import EXIT_CRASHED, EXIT_USER_ERROR

FULL_ERROR = "HYDRA_FULL_ERROR"


@contextmanager
def hydra_errors_raised() -> Iterator[None]:
    """Hydra's errors reach the caller as exceptions instead of Hydra's report and exit 1."""
    previous = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(FULL_ERROR, None)
        else:
            os.environ[FULL_ERROR] = previous


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Any exception ends the process: 2 and one line for a user error, 1 and one line (the
    traceback saved to a file) for a crash. Also a decorator, for Hydra's task function: an
    exception leaving it would get Hydra's "Error executing job" line on top."""
    try:
        yield
    except Exception as error:
        sys.exit(report(error))


def report(error: Exception) -> int:
    """Print what the user needs to know about `error` to stderr; the exit status it deserves."""
    if (message := user_error_message(error)) is not None:
        print(message, file=sys.stderr)
        return EXIT_USER_ERROR
    saved = save_traceback(error)
    print(f"trainer crashed: {type(error).__name__}: {first_line(error)} (traceback in {saved})", file=sys.stderr)
    return EXIT_CRASHED


def user_error_message(error: Exception) -> str | None:
    """One line saying what to fix, or None when `error` is a crash rather than a user's mistake."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"Invalid command line: {group}={option} is unknown; choose one of {', '.join(error.options)}"
    if isinstance(error, HydraException | OmegaConfBaseException):
        return f"Invalid command line: {describe_config_error(error)}"
    if isinstance(error, OSError):
        return f"Cannot create or write {error.filename or 'a file'}: {error.strerror or error}"
    if raised_by_hydra(error):
        return f"Invalid command line: {first_line(error)}"
    return None


def describe_config_error(error: Exception) -> str:
    """Hydra's message and, for an override OmegaConf refused, the key and what it accepts."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        if isinstance(cause, ConfigAttributeError | ConfigKeyError) and is_dataclass(cause.object_type):
            return unknown_key_message(cause.full_key, cause.object_type)
        return f"{cause.full_key}: {first_line(cause)}"
    return "; ".join(paragraph_lines(error))


def unknown_key_message(full_key: str, schema: type) -> str:
    section, _, key = full_key.rpartition(".")
    allowed = [item.name for item in fields(schema)]
    close = difflib.get_close_matches(key, allowed, n=1)
    suggestion = f"did you mean {section + '.' if section else ''}{close[0]}? " if close else ""
    return f"{full_key} is not a setting; {suggestion}{section or 'the top level'} accepts {', '.join(allowed)}"


def paragraph_lines(error: Exception) -> list[str]:
    """The lines of the message's first paragraph (Hydra appends search paths and the like)."""
    lines = []
    for line in str(error).strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return lines


def raised_by_hydra(error: Exception) -> bool:
    """Hydra raises plain ValueErrors for a misused command line (e.g. --run with --multirun)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and f"{os.sep}hydra{os.sep}" in frames[-1].filename


def save_traceback(error: Exception) -> str:
    """The crash's traceback in a file of its own: the console keeps one line."""
    handle, path = tempfile.mkstemp(prefix="trainer-crash-", suffix=".log")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write("".join(traceback.format_exception(error)))
    return path


class ConsoleFormatter(logging.Formatter):
    """One line per record on the console; a logged traceback goes to trainer.log only."""

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept
