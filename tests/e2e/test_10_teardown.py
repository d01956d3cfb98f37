"""`docker compose down -v` leaves no container, network or volume of the project."""

from .stack import Stack, run


def test_down_removes_everything(stack: Stack) -> None:
    stack.down()
    label = f"label=com.docker.compose.project={stack.project}"
    assert run(["docker", "ps", "-a", "-q", "--filter", label]).split() == []
    assert run(["docker", "network", "ls", "-q", "--filter", label]).split() == []
    assert run(["docker", "volume", "ls", "-q", "--filter", label]).split() == []
