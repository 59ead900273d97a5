"""The `carbonshift` command's entry point: `plan` starts parsing its job file in a fork (see
carbonshift.prefetch) before the command line's imports, which take as long."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    jobs = _jobs_file(given)
    if jobs is not None:
        from carbonshift import prefetch

        prefetch.start(jobs)
    from carbonshift.cli import main as run

    return run(given)


def _jobs_file(argv: list[str]) -> str | None:
    """The job file of a `plan` command line, spelled as `--jobs PATH` or `--jobs=PATH`; None
    otherwise (argparse then reads it, just without the head start)."""
    if argv[:1] != ["plan"]:
        return None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            return None
        if arg.startswith("--jobs="):
            return arg.removeprefix("--jobs=")
        if arg == "--jobs" and i + 1 < len(argv):
            return argv[i + 1]
    return None
