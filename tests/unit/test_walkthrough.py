"""`tests.walkthrough`: the README's shell blocks read as commands and expected outputs, run in one bash session."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands import ROOT
from tests.walkthrough import Shell, WalkthroughError, blocks, matches, steps, walk

FENCE = "```"

DOCUMENT = f"""# Title

Some prose.

<!-- walkthrough: run, except: make test -->
{FENCE}sh
mkdir -p sub && cd sub      # a comment at the end of a line is the reader's
make test                   # the test command: not run
echo "one two" \\
  three
# one two three
{FENCE}

{FENCE}text
# not a heading, not a command
{FENCE}

## Second

1. A step:

   <!-- walkthrough: run -->
   {FENCE}sh
   cat <<'EOF'
   # inside the here-document
   EOF
   # # inside the here-document
   basename "$PWD"
   # sub
   {FENCE}

<!-- walkthrough: skip: needs a cluster -->
{FENCE}sh
rm -rf /
{FENCE}
"""


@pytest.fixture
def shell(tmp_path: Path):
    opened = Shell(tmp_path, {"PATH": "/usr/bin:/bin"}, tmp_path / "walk.log")
    yield opened
    opened.close()


def test_blocks_and_commands_are_read_as_a_reader_types_them() -> None:
    found = blocks(DOCUMENT)
    assert [(b.run, b.section, b.reason, b.excepted) for b in found] == [
        (True, "Title", "", "make test"),
        (True, "Second", "", None),
        (False, "Second", "needs a cluster", None),
    ]
    first, second, _ = found
    assert [c.text for c in first.commands] == [
        "mkdir -p sub && cd sub      # a comment at the end of a line is the reader's",
        "make test                   # the test command: not run",
        'echo "one two" \\\n  three',
    ]
    assert [c.expected for c in first.commands] == [None, None, ["one two three"]]
    assert first.commands[2].line == 9
    # A block inside a list item is read without its indent; a here-document's lines are the command's.
    assert [c.text for c in second.commands] == ["cat <<'EOF'\n# inside the here-document\nEOF", 'basename "$PWD"']
    assert [c.expected for c in second.commands] == [["# inside the here-document"], ["sub"]]
    assert [c.text.split()[0] for c in steps(DOCUMENT)] == ["mkdir", "echo", "cat", "basename"]


def test_the_walk_runs_in_one_shell_and_compares_outputs(shell: Shell) -> None:
    done = walk(DOCUMENT, shell, settle=1)
    assert [c.line for c in done] == [7, 9, 24, 28]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("# one two three", "# one two four", "still differs from the README's"),  # an expected output changed
        ('echo "one two"', 'echo "one too"', "still differs from the README's"),  # a command changed
        ("mkdir -p sub && cd sub", "cd sub", "exit 1"),  # a command that fails
        ("   # sub", "   # other", "still differs from the README's"),
    ],
)
def test_a_wrong_command_or_output_fails_the_walk(shell: Shell, old: str, new: str, says: str) -> None:
    assert DOCUMENT.count(old) == 1
    with pytest.raises(WalkthroughError, match=says):
        walk(DOCUMENT.replace(old, new), shell, settle=1)


def test_a_failure_says_where_what_was_expected_and_what_came(shell: Shell) -> None:
    document = DOCUMENT.replace("# one two three", "# one two four").replace("three\n", "three; echo oops >&2\n", 1)
    with pytest.raises(WalkthroughError) as failure:
        walk(document, shell, settle=1)
    message = str(failure.value)
    assert message.startswith("README line 9 (Title): after 1 s the output still differs from the README's")
    assert "README says:\none two four\ngot (exit 0):\none two three\n" in message
    assert message.endswith("stderr (last lines):\noops")  # the last command's stderr, not every retry's


def test_a_command_is_retried_until_its_output_arrives(shell: Shell) -> None:
    commands = "(sleep 1; echo ready > state) &\ncat state 2>/dev/null\n# ready"
    document = f"<!-- walkthrough: run -->\n{FENCE}sh\n{commands}\n{FENCE}\n"
    assert [c.expected for c in walk(document, shell, settle=20)] == [None, ["ready"]]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (f"{FENCE}sh\necho\n{FENCE}\n", "needs a marker"),
        (f"<!-- walkthrough: skip -->\n{FENCE}sh\necho\n{FENCE}\n", "says why"),
        (f"<!-- walkthrough: run, but -->\n{FENCE}sh\necho\n{FENCE}\n", "unknown marker"),
        (f"<!-- walkthrough: run -->\n{FENCE}sh\n# output\n{FENCE}\n", "no command above it"),
        (f"<!-- walkthrough: run -->\n{FENCE}sh\ncat <<EOF\nx\n{FENCE}\n", "never closed"),
        (f"<!-- walkthrough: run -->\n{FENCE}sh\necho\n", "never closed"),
    ],
)
def test_a_malformed_block_is_refused(document: str, says: str) -> None:
    with pytest.raises(WalkthroughError, match=says):
        blocks(document)


def test_outputs_match_line_by_line_or_as_one_line() -> None:
    assert matches(['[{"a":1},', ' {"b":2}]'], '[{"a":1},{"b":2}]\n')
    assert matches(["  90 X", "  10 Y"], "     90 X\n     10 Y\n")
    assert not matches(['[{"a":1},', ' {"b":2}]'], '[{"a":1},{"b":3}]')
    assert not matches(["x"], "x\ny")


def test_the_readme_walks_through_its_sections() -> None:
    """Every shell block of the README is marked; the walk-through starts the stack and compares outputs in each
    section a newcomer follows."""
    readme = (ROOT / "README.md").read_text()
    compared = {c.section for c in steps(readme) if c.expected}
    assert {"Set up", "Model repository", "Model quality", "Rollouts"} <= compared
    first = next(steps(readme))
    assert first.text.startswith("docker compose up -d --build --wait")
    assert all(b.reason for b in blocks(readme) if not b.run)
