"""`python -m trainer.review PATH [--print-only]`: TensorBoard over a run, a sweep, or outputs/.

TensorBoard is started on loopback on a free port with PATH's event files as its logdir, and the
addresses of the dashboards that compare runs are printed; Ctrl-C stops it. Runs are named by
their directories, `JOB/tensorboard/OVERRIDES` (see `RunDirectory.tensorboard_dir`), the same
names a plain `tensorboard --logdir PATH` shows.
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer.errors import NothingToReview
from trainer.run.outcome import EXIT_USER_ERROR

HOST = "127.0.0.1"
EVENT_FILES = "events.out.tfevents.*"
# TensorBoard's own line once it serves; what it printed before is start-up chatter.
SERVING = re.compile(r"^TensorBoard \S+ at (http://\S+) ")
DASHBOARDS = {
    "#custom_scalars": "train vs eval loss, tokens/s, learning rate, grad norm: one line per run",
    "#hparams": "one row per run: its hyper-parameters and final metrics",
    "#text": "each run's config and its previews per step",
}
STOP_TIMEOUT_SEC = 10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.review", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run directory, a sweep directory (multirun/DATE/TIME), or outputs/")
    parser.add_argument("--print-only", action="store_true", help="print the tensorboard command instead of running it")
    args = parser.parse_args(argv)
    try:
        logdir = review_logdir(args.path)
    except NothingToReview as error:
        print(f"Cannot review {args.path}: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    arguments = tensorboard_arguments(logdir, free_port())
    if args.print_only:
        print(shlex.join(["tensorboard", *arguments]))
        return 0
    return serve(arguments, args.path)


def review_logdir(path: Path) -> Path:
    """The logdir for PATH: a run's own tensorboard/ (its runs then are named by their overrides
    alone), or PATH itself for a sweep or a directory of runs."""
    if not path.is_dir():
        raise NothingToReview("no such directory")
    if (path / "tensorboard").is_dir():
        path = path / "tensorboard"
    if next(path.rglob(EVENT_FILES), None) is None:
        raise NothingToReview(
            "no TensorBoard event files under it; give a run, a sweep (multirun/DATE/TIME) or outputs/"
        )
    return path


def tensorboard_arguments(logdir: Path, port: int) -> list[str]:
    return ["--logdir", str(logdir), "--host", HOST, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def serve(arguments: list[str], path: Path) -> int:
    """Run TensorBoard until it ends or Ctrl-C (or SIGTERM) stops it; its start-up chatter is
    replaced by the addresses, and shown only if it fails to start."""
    # Ctrl-C stops it however it was started: a shell starting it in the background of a script
    # leaves SIGINT ignored, and Python then raises no KeyboardInterrupt by itself.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", *arguments], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        chatter = []
        for line in server.stderr:
            if match := SERVING.match(line):
                print(addresses(match.group(1), path), flush=True)
                break
            chatter.append(line)
        else:
            sys.stderr.write("".join(chatter))
            return server.wait() or 1
        for line in server.stderr:
            sys.stderr.write(line)
        return server.wait()
    except KeyboardInterrupt:
        stop(server)
        return 0


def addresses(url: str, path: Path) -> str:
    lines = [f"TensorBoard for {path}: {url}", *(f"  {url}{anchor:<16} {what}" for anchor, what in DASHBOARDS.items())]
    return "\n".join([*lines, "Ctrl-C stops it."])


def stop(server: subprocess.Popen) -> None:
    """TensorBoard ends quietly on SIGINT (a terminal's Ctrl-C has sent it one already)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while it stops changes nothing
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=STOP_TIMEOUT_SEC)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
