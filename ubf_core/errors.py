"""Errors that a person reads: one line naming the file (or data set) and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class UBFInputError(ValueError):
    """Bad input. ``str(err)`` is one line: ``"<where>: <problem>"``.

    ``where`` is a file path or a data-set name; ``problem`` says what is wrong in the field's words.
    Command-line entry points print ``str(err)`` and exit with status 2.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.where}: {self.problem}")

    def __reduce__(self):  # keep (where, problem) when the error crosses a Dask process boundary
        return (type(self), (self.where, self.problem))
