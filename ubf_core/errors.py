"""Errors that a person reads: one line naming the file (or data set) and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_error(err: BaseException) -> str:
    """An exception as one line for a message that quotes it: ``"OSError: [Errno 2] No such file"`` (its type
    alone when it has no text)."""
    text = _one_line(str(err))
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class UBFInputError(ValueError):
    """Bad input. ``str(err)`` is one line: ``"<where>: <problem>"``.

    ``where`` is a file path or a data-set name; ``problem`` says what is wrong in the field's words.
    Command-line entry points print ``str(err)`` and exit with status 2.

    An error whose remedy is a params.yaml setting gives it apart: ``fix`` (the remedy in params words, e.g.
    "set `sort: true` under wavelengths to reorder the bands") and ``key`` (the data-set key it concerns, e.g.
    ``"wavelengths.sort"``); ``problem`` is then ``"<detail>; <fix>"``. A front end that has other means than
    params.yaml (the ``ubf`` command's options) rewords the remedy from ``detail`` and ``key``.
    """

    def __init__(self, where: str | Path, problem: str, fix: str | None = None, key: str | None = None):
        self.where = str(where)
        self.detail = _one_line(problem)  # always one line
        self.fix = _one_line(fix) if fix else None
        self.key = key
        self.problem = f"{self.detail}; {self.fix}" if self.fix else self.detail
        super().__init__(f"{self.where}: {self.problem}")

    def __reduce__(self):  # keep (where, problem, fix, key) when the error crosses a Dask process boundary
        return (type(self), (self.where, self.detail, self.fix, self.key))
