"""``python -m personas check``: check the persona files without starting the service.

``flask personas check`` needs the app, and the app does not start while a persona in use is
broken; this entry point reads the same settings and prints every problem, one a line.
"""

from __future__ import annotations

import sys

from config import ConfigError
from personas.cli import check_report
from personas.startup import load_settings


def main(argv: list[str]) -> int:
    if argv != ["check"]:
        sys.stderr.write("usage: python -m personas check\n")
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stdout.write("".join(f"{line}\n" for line in exc.problems))
        return 1
    lines, ok = check_report(settings)
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
