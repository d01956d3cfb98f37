"""Load goes to loopback or to a container the run started, nothing else (issue #15).

Two halves: harness/addresses.py refuses every container address it should (unit tests of
``Target`` and ``container_address``), and the code that picks where traffic goes, in the
benchmark, the shared helpers (harness/) and the test drivers, is read here and may only get an
address from there:

* A: no address literal but loopback (``127.0.0.1``, ``[::1]``) in any string;
* B: no lookup of this machine's own addresses (the names and commands listed in HOST_DISCOVERY_NAMES and
  HOST_DISCOVERY_COMMANDS);
* C: no ``Target(...)`` outside addresses.py (only ``Target.loopback`` / ``Target.container``);
* D: no URL with a host filled in at run time (a string ending in ``://`` before a value) but
  ``Target.url``;
* E: every HTTP connection is opened to ``<target>.host`` of a parameter annotated ``Target``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from harness.addresses import LOOPBACK, AddressRefused, Target, container_address

ROOT = Path(__file__).resolve().parents[3]
ADDRESSES = ROOT / "harness" / "addresses.py"
# Everything that sends traffic: the benchmark, the shared helpers, the e2e and Swarm tests.
TRAFFIC = sorted(
    {
        *ROOT.glob("bench/*.py"),
        *ROOT.glob("bench/benchmark/*.py"),
        *ROOT.glob("harness/*.py"),
        *ROOT.glob("tests/e2e/*.py"),
        *ROOT.glob("tests/swarm/*.py"),
    }
)  # fmt: skip (bench/.cache holds the benchmark's venvs, not its code)
# The code that chooses addresses: the benchmark's package, the shared helpers and the drivers of the stacks under test.
CHOOSERS = sorted(
    {*ROOT.glob("bench/benchmark/*.py"), *ROOT.glob("harness/*.py"), ROOT / "tests" / "e2e" / "stack.py",
     ROOT / "tests" / "e2e" / "conftest.py", ROOT / "tests" / "swarm" / "conftest.py"}
)  # fmt: skip

IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
IPV6 = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]")
ALLOWED_LITERALS = {LOOPBACK, "[::1]"}
HOST_DISCOVERY_NAMES = {"gethostname", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getfqdn", "getaddrinfo",
                        "net_if_addrs", "if_nameindex"}  # fmt: skip
HOST_DISCOVERY_COMMANDS = re.compile(r"hostname\s+(-I|-i|--all-ip|--ip)|\bip\s+(-\d\s+)?(route|addr|a)\b|ifconfig")
HOST_DISCOVERY_PROGRAMS = {"hostname", "ip", "ifconfig", "getent", "nslookup", "dig", "host"}  # as a command's argv[0]
CONNECTIONS = {"HTTPConnection", "HTTPSConnection", "create_connection"}


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def literal_and_discovery_violations(source: str, where: str) -> list[str]:
    """Rules A and B."""
    tree = ast.parse(source)
    found = []
    for line, text in _strings(tree):
        for literal in IPV4.findall(text) + IPV6.findall(text):
            if literal not in ALLOWED_LITERALS:
                found.append(f"{where}:{line}: address literal {literal}")
        if HOST_DISCOVERY_COMMANDS.search(text):
            found.append(f"{where}:{line}: finds this machine's addresses: {text!r}")
    for node in ast.walk(tree):
        if _name(node) in HOST_DISCOVERY_NAMES:
            found.append(f"{where}:{node.lineno}: finds this machine's addresses: {_name(node)}")
        program = node.elts[0] if isinstance(node, ast.List | ast.Tuple) and node.elts else None
        if isinstance(program, ast.Constant) and program.value in HOST_DISCOVERY_PROGRAMS:
            found.append(f"{where}:{node.lineno}: finds this machine's addresses: runs {program.value}")
    return found


def chooser_violations(source: str, where: str) -> list[str]:
    """Rules C, D and E (not applied to addresses.py itself, where Target is made)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Target":
            found.append(f"{where}:{node.lineno}: Target(...) made by hand")
    for node in ast.walk(tree):
        pieces = node.values if isinstance(node, ast.JoinedStr) else [node] if isinstance(node, ast.BinOp) else []
        for piece in pieces:
            piece = piece.left if isinstance(piece, ast.BinOp) else piece
            if isinstance(piece, ast.Constant) and isinstance(piece.value, str) and piece.value.endswith("://"):
                found.append(f"{where}:{node.lineno}: URL with a host filled in at run time, not Target.url")
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        targets = {a.arg for a in function.args.args + function.args.kwonlyargs if _annotation(a) == "Target"}
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call) and _name(n.func) in CONNECTIONS):
            host = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "host"), None)
            ok = (isinstance(host, ast.Attribute) and host.attr == "host" and isinstance(host.value, ast.Name)
                  and host.value.id in targets)  # fmt: skip
            if not ok:
                found.append(f"{where}:{call.lineno}: {_name(call.func)} to something else than a Target's host")
    return found


def _annotation(arg: ast.arg) -> str:
    annotation: Any = arg.annotation
    if isinstance(annotation, ast.Constant):
        return str(annotation.value)
    return ast.unparse(annotation) if annotation is not None else ""


# --- the code as it is -----------------------------------------------------------------------------------------


def test_the_scanned_code_is_there() -> None:
    names = {str(p.relative_to(ROOT)) for p in TRAFFIC}
    assert {
        "bench/benchmark/measure.py",
        "bench/benchmark/systems.py",
        "harness/compose.py",
        "harness/load.py",
    } <= names
    assert ADDRESSES in CHOOSERS


@pytest.mark.parametrize("path", TRAFFIC, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_address_but_loopback_is_written_down_and_none_is_looked_up(path: Path) -> None:
    assert literal_and_discovery_violations(path.read_text(), str(path.relative_to(ROOT))) == []


@pytest.mark.parametrize("path", [p for p in CHOOSERS if p != ADDRESSES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_address_comes_from_a_target(path: Path) -> None:
    assert chooser_violations(path.read_text(), str(path.relative_to(ROOT))) == []


# --- the checks catch what they are for ---------------------------------------------------------------------------

# The sample below must not itself contain a lookup of this machine's address that the stack's
# own scans would find: the call on line 9 is spelled out only when the sample is built.
_LOOKUP = "socket.{}(socket.{}())".format("gethost" + "byname", "gethost" + "name")
BAD = """
import socket, http.client
from harness.addresses import Target

EXTERNAL = "10.1.2.3"
V6 = "http://[fe80::1]:80/"

def primary() -> str:
    return LOOKUP

def shell() -> str:
    return run(["hostname", "-I"])

def by_hand(port: int) -> Target:
    return Target("192.168.0.7", port, "by hand")

def url(host: str, port: int) -> str:
    return f"http://{host}:{port}/predict"

def concatenated(host: str) -> str:
    return "http://" + host

def connect(target: Target, host: str) -> None:
    http.client.HTTPConnection(host, 80)
    http.client.HTTPConnection(target.host, target.port)
    socket.create_connection((target.host, target.port))
""".replace("LOOKUP", _LOOKUP)


def test_the_checks_catch_every_other_way_to_an_address() -> None:
    found = literal_and_discovery_violations(BAD, "bad.py") + chooser_violations(BAD, "bad.py")
    assert "bad.py:5: address literal 10.1.2.3" in found
    assert "bad.py:6: address literal [fe80::1]" in found
    assert "bad.py:15: address literal 192.168.0.7" in found
    assert "bad.py:9: finds this machine's addresses: gethostbyname" in found
    assert "bad.py:9: finds this machine's addresses: gethostname" in found
    assert "bad.py:12: finds this machine's addresses: runs hostname" in found
    assert "bad.py:15: Target(...) made by hand" in found
    assert "bad.py:18: URL with a host filled in at run time, not Target.url" in found
    assert "bad.py:21: URL with a host filled in at run time, not Target.url" in found
    assert "bad.py:24: HTTPConnection to something else than a Target's host" in found
    assert "bad.py:26: create_connection to something else than a Target's host" in found  # a tuple, not .host
    assert not [f for f in found if f.startswith("bad.py:25:")]


def test_a_shell_command_that_reads_this_machines_addresses_is_caught() -> None:
    found = literal_and_discovery_violations('run("hostname -I | cut -d\' \' -f1")\nrun("ip -4 route get 1")', "x.py")
    assert found == [
        "x.py:1: finds this machine's addresses: \"hostname -I | cut -d' ' -f1\"",
        "x.py:2: finds this machine's addresses: 'ip -4 route get 1'",
    ]


# --- Target and container_address ------------------------------------------------------------------------------

RUN = {"bench.run": "20250101-1"}


def inspected(labels: dict[str, str] | None = None, mode: str = "bridge", **addresses: str) -> dict[str, Any]:
    networks = {name: {"IPAddress": address} for name, address in (addresses or {"bridge": "172.17.0.5"}).items()}
    return {
        "Name": "/bench-20250101-1-direct",
        "Config": {"Labels": RUN if labels is None else labels},
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
    }


def test_loopback_is_127_0_0_1() -> None:
    target = Target.loopback(8080)
    assert (target.host, target.url("/predict"), str(target)) == (
        "127.0.0.1", "http://127.0.0.1:8080/predict", "127.0.0.1:8080 (loopback)"
    )  # fmt: skip


def test_a_container_of_the_run_is_reached_at_its_own_address() -> None:
    target = Target.container(inspected(), RUN, 8000)
    assert (target.host, target.port, target.where) == ("172.17.0.5", 8000, "container bench-20250101-1-direct")
    compose = inspected({"com.docker.compose.project": "bench-1", "other": "x"}, **{"bench-1_default": "10.9.0.3"})
    assert container_address(compose, {"com.docker.compose.project": "bench-1"}) == "10.9.0.3"


@pytest.mark.parametrize(
    ("container", "labels", "reason"),
    [
        (inspected({"bench.run": "someone-else"}), RUN, "was not started by this run"),
        (inspected({}), RUN, "was not started by this run"),
        (inspected(), {}, "was not started by this run"),  # no label to check: refused, not waved through
        (inspected(mode="host", bridge=""), RUN, "shares another network stack (host)"),
        (inspected(mode="container:abc"), RUN, "shares another network stack"),
        (inspected(bridge=""), RUN, "has 0 addresses"),
        (inspected(a="172.18.0.2", b="172.19.0.2"), RUN, "has 2 addresses"),
        (inspected(bridge="8.8.8.8"), RUN, "not on a private bridge network"),
        (inspected(bridge="127.0.0.1"), RUN, "not on a private bridge network"),
        (inspected(bridge="0.0.0.0"), RUN, "not on a private bridge network"),
    ],
)
def test_any_other_container_address_is_refused(container: dict[str, Any], labels: dict[str, str], reason: str) -> None:
    with pytest.raises(AddressRefused, match=re.escape(reason)):
        Target.container(container, labels, 8000)
