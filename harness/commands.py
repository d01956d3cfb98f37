"""Running commands from tests and the benchmark: a time limit, and a failure that says what failed."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The end of a failed command's output that goes into the error (a build log would drown the message).
FAILURE_TAIL_LINES = 60


class Failed(AssertionError):
    """A command failed or did not finish, or a wait timed out.

    An ``AssertionError``: in a test it is a failure like any other (and ``wait_for`` does not retry
    it); the benchmark catches it and records the system as failed.
    """


def run(
    args: list[str],
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_to: Path | None = None,
) -> str:
    """Run ``args`` in ``cwd`` (the checkout by default) within ``timeout`` seconds; return its stdout.

    With ``check``, a non-zero exit raises :class:`Failed` with the end of its output; a command
    that outlives ``timeout`` always does. ``log_to`` gets the command line and all its output appended.
    """
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or ROOT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{shlex.join(args)} did not finish within {timeout:.0f}s") from exc
    if log_to is not None:
        with log_to.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {shlex.join(args)}\n{result.stdout}{result.stderr}\n")
    if check and result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-FAILURE_TAIL_LINES:])
        raise Failed(f"{shlex.join(args)} failed ({result.returncode}):\n{output}")
    return result.stdout
