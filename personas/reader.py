"""What every check of a persona file's shape writes to: the problems found so far. The
sections' checks (``personas/*_shape.py``) take one of these; personas/shape.py's Reader, which
reads the whole file, is one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    """One reason a persona cannot be used, printed as ``file: field: problem``.

    ``kind`` is ``structure`` (the file itself is wrong: a problem in every mode) or ``key``
    (an environment variable the file names is not set: a problem only where the key is needed;
    or it is set to a value that cannot work, such as a tool secret that is not ``whsec_...``,
    which the loader reports in every mode).
    """

    source: str
    field: str
    message: str
    kind: str = "structure"

    def __str__(self) -> str:
        return f"{self.source}: {self.field}: {self.message}"


class Problems:
    """The problems of one persona file, collected rather than raised at the first."""

    def __init__(self, source: str, base: Path | None = None) -> None:
        self.source = source
        #: The persona file's folder, which relative paths in it (``[knowledge] folder``) start
        #: from; None for data that came from no file (then they start from the working one).
        self.base = base
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.source, field, message))

    def env_name(self, field: str, value: str) -> None:
        if not ENV_NAME.match(value):
            self.problem(field, "must be the name of an environment variable, such as "
                                "OPENAI_API_KEY")
