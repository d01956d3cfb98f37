"""Why a version cannot be served: the one error every step of a load raises, with a one-line reason."""

from __future__ import annotations


class ModelLoadError(Exception):
    """The model cannot be served; the message is a one-line reason for the operator."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters (a log line, a metric's reason)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
