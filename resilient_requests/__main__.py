"""``resilient-requests COMMAND`` / ``python -m resilient_requests COMMAND``.

Each command is one ``_add_<name>`` function in :mod:`resilient_requests.cli`
that adds its subparser and sets ``run`` to a function taking the parsed
arguments and returning the exit status; :data:`resilient_requests.cli.COMMANDS`
lists them. To add a command, write its ``_add_`` function and append it there.
The exit statuses are listed in :mod:`resilient_requests.cli` and in ``--help``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .cli import COMMANDS, EXIT_INTERRUPTED, EXIT_OTHER, description, epilog, version

__all__ = ["build_parser", "main"]


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name.startswith("resilient-requests"):
        return "resilient-requests"  # the console script
    return "python -m resilient_requests"


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line: one subcommand (or a group of them) per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=prog or _prog(), description=description(), epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (``... | head``): stop quietly, without a traceback at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OTHER


if __name__ == "__main__":
    sys.exit(main())
