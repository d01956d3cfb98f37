"""The README's walk-through as a test runs it: its shell blocks, in order, in one shell, outputs compared.

Every ```` ```sh ```` block of the README carries a marker on the line above it:

* ``<!-- walkthrough: run -->``: its commands run, in document order, in one bash session (so
  ``cd``, an activated venv and shell functions carry over from block to block, as they do for a
  reader typing them);
* ``<!-- walkthrough: run, except: make test -->``: the same, but a command that starts with the
  text after ``except:`` does not run (the test command itself, which runs this);
* ``<!-- walkthrough: skip: <why> -->``: not run, and the marker says why (another test covers it,
  it needs a cluster, ...).

Inside a block that runs, a command is a line (with its ``\\`` continuations and its here-document),
and the ``# `` lines right under it are its expected output. A command with expected output is run
again, up to ``settle`` seconds, until its standard output equals them (the repository is polled, a
change takes a poll interval to reach every replica): compared line by line with the surrounding
spaces left out, so one JSON answer may be written over two lines. A command without expected output
runs once and must exit 0. A comment that explains a command goes at the end of its line.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!-- walkthrough: (?P<what>run|skip)(?P<rest>.*?)\s*-->$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<tag>\w+)\1")


class WalkthroughError(AssertionError):
    """The README and the product disagree (or a block is malformed): says where and how."""


@dataclass
class Command:
    text: str
    line: int  # where it starts in the document (1-based)
    section: str
    expected: list[str] | None = None  # None: no output is compared


@dataclass
class Block:
    line: int  # the opening fence
    section: str
    run: bool
    reason: str = ""  # why it does not run
    excepted: str | None = None  # a command prefix that does not run
    commands: list[Command] = field(default_factory=list)


def blocks(document: str) -> list[Block]:
    """Every ```sh block of ``document``, with its marker; a block without one is an error."""
    lines = document.splitlines()
    found: list[Block] = []
    section = ""
    number = 0
    while number < len(lines):
        text = lines[number]
        fence = text.strip()
        if text.startswith("#"):
            section = text.lstrip("#").strip()
        if not fence.startswith("```"):
            number += 1
            continue
        end = next((i for i in range(number + 1, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise WalkthroughError(f"README line {number + 1} ({section}): the block is never closed")
        if fence in ("```sh", "```bash", "```shell"):
            marker = MARKER.match(lines[number - 1].strip()) if number else None
            if marker is None:
                raise WalkthroughError(
                    f"README line {number + 1} ({section}): a shell block needs a marker on the line above it, "
                    "<!-- walkthrough: run --> or <!-- walkthrough: skip: why -->"
                )
            block = _block(marker, number + 1, section)
            if block.run:
                indent = len(text) - len(text.lstrip())  # a block inside a list item is indented
                body = [line[indent:] if line[:indent].isspace() else line for line in lines[number + 1 : end]]
                block.commands = commands(body, number + 2, section)
            found.append(block)
        number = end + 1
    return found


def _block(marker: re.Match[str], line: int, section: str) -> Block:
    rest = marker["rest"].strip()
    if marker["what"] == "skip":
        reason = rest.removeprefix(":").strip()
        if not rest.startswith(":") or not reason:
            raise WalkthroughError(f"README line {line} ({section}): a skipped block says why (skip: <why>)")
        return Block(line, section, run=False, reason=reason)
    if not rest:
        return Block(line, section, run=True)
    excepted = rest.removeprefix(", except:").strip()
    if not rest.startswith(", except:") or not excepted:
        raise WalkthroughError(f"README line {line} ({section}): unknown marker text {rest!r}")
    return Block(line, section, run=True, excepted=excepted)


def commands(lines: list[str], first_line: int, section: str = "") -> list[Command]:
    """The commands of a block's ``lines`` (the first is document line ``first_line``), with their expected outputs."""
    found: list[Command] = []
    index = 0
    while index < len(lines):
        text = lines[index]
        where = first_line + index
        if not text.strip():
            index += 1
            continue
        if text.startswith("#"):
            if not found:
                raise WalkthroughError(f"README line {where} ({section}): expected output with no command above it")
            if found[-1].expected is None:
                found[-1].expected = []
            found[-1].expected.append(text[1:].removeprefix(" "))
            index += 1
            continue
        parts = [text]
        while parts[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            parts.append(lines[index])
        heredoc = HEREDOC.search(parts[0])
        if heredoc:
            tag = heredoc["tag"]
            while index + 1 < len(lines):
                index += 1
                parts.append(lines[index])
                if lines[index].strip() == tag:
                    break
            else:
                raise WalkthroughError(f"README line {where} ({section}): here-document {tag} is never closed")
        found.append(Command("\n".join(parts), where, section))
        index += 1
    return found


def normalized(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def matches(expected: list[str], output: str) -> bool:
    """Line by line, spaces around each line left out; or the whole as one line (JSON written over two)."""
    want, got = normalized(expected), normalized(output.splitlines())
    return want == got or "".join(want) == "".join(got)


class Shell:
    """One bash session; each command runs from a file, ``source``d with stdin from /dev/null, so a command that
    reads its input cannot eat the next one, and ``cd``, variables and functions stay for the next."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.token = f"__walkthrough_{secrets.token_hex(6)}__"
        self._count = 0
        self._stderr_from = 0
        self._stderr = log.with_suffix(".stderr")
        with self._stderr.open("w") as stderr:  # the shell keeps its own descriptor
            self._process = subprocess.Popen(
                ["bash", "--noprofile", "--norc"],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # its own process group: close() stops what it started too
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def run(self, text: str, timeout: float) -> tuple[int, str]:
        """Run ``text``; its exit status and standard output."""
        self._count += 1
        self._stderr_from = self._stderr.stat().st_size  # stderr_tail() shows this command's only
        script = self.log.parent / f"{self.log.stem}-{self._count}.sh"
        script.write_text(text + "\n")
        assert self._process.stdin is not None
        self._process.stdin.write(f"source {script} </dev/null; printf '\\n{self.token} %d\\n' \"$?\"\n")
        self._process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                tail = self.stderr_tail()
                raise WalkthroughError(f"did not finish within {timeout:.0f} s:\n{text}\n{tail}") from None
            if line is None:
                raise WalkthroughError(f"the shell exited while running:\n{text}\n{self.stderr_tail()}")
            if line.startswith(self.token):
                status = int(line.split()[1])
                break
            output.append(line)
        stdout = "".join(output).removesuffix("\n")  # the newline printf put before the token
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {text}\n{stdout}\n[exit {status}]\n")
        return status, stdout

    def stderr_tail(self, lines: int = 30) -> str:
        """The end of what the last command wrote to stderr."""
        with self._stderr.open("rb") as handle:
            handle.seek(self._stderr_from)
            tail = handle.read().decode(errors="replace").splitlines()[-lines:]
        return "stderr (last lines):\n" + "\n".join(tail)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._reader.join(timeout=10)  # it ends at the end of the output
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


def steps(document: str) -> Iterator[Command]:
    """The commands that run, in document order."""
    for block in blocks(document):
        for command in block.commands:
            if block.excepted is None or not command.text.startswith(block.excepted):
                yield command


def walk(
    document: str,
    shell: Shell,
    rewrite: Callable[[str], str] = lambda text: text,
    settle: float = 90,
    timeout: float = 900,
) -> list[Command]:
    """Run the walk-through of ``document`` in ``shell``, each command as ``rewrite`` makes it; the commands run.

    Raises :class:`WalkthroughError` at the first command that fails or whose output never equals the README's.
    """
    done: list[Command] = []
    for command in steps(document):
        text = rewrite(command.text)
        where = f"README line {command.line} ({command.section})"
        deadline = time.monotonic() + settle
        while True:
            status, output = shell.run(text, timeout)
            if command.expected is None:
                if status != 0:
                    raise WalkthroughError(f"{where}: exit {status}:\n{text}\nstdout:\n{output}\n{shell.stderr_tail()}")
                break
            if status == 0 and matches(command.expected, output):
                break
            if time.monotonic() > deadline:
                expected = "\n".join(command.expected)
                raise WalkthroughError(
                    f"{where}: after {settle:.0f} s the output still differs from the README's\n$ {text}\n"
                    f"README says:\n{expected}\ngot (exit {status}):\n{output}\n{shell.stderr_tail()}"
                )
            time.sleep(1)
        done.append(command)
    return done
