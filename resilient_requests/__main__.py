"""``python -m resilient_requests COMMAND``.

Each command is one ``_add_<name>`` function that adds its subparser and sets
``run`` to a function taking the parsed arguments and returning the exit
status; :data:`COMMANDS` lists them. To add a command (``get``, ``post``, ...),
write its ``_add_`` function and append it there.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional, Sequence


def _add_demo(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "demo",
        help="plain requests vs ResilientSession against a flaky local upstream",
        description="Run the same threaded batch of calls through plain requests and through "
                    "ResilientSession against a local upstream that is healthy, then down, then "
                    "healthy again, and print what each client saw. Everything stays on 127.0.0.1.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="every duration x0.25 and half the calls (about 12 s instead of 45 s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed for the upstream's script of 503s and slow replies (default: 1)")
    parser.add_argument("--json", action="store_true",
                        help="also print the numbers as one JSON object on the last line")

    def run(args: argparse.Namespace) -> int:
        from .demo import run as run_demo

        return run_demo(quick=args.quick, seed=args.seed, json_line=args.json)

    parser.set_defaults(run=run)


COMMANDS: List[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [_add_demo]


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="python -m resilient_requests")
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
        return 130


if __name__ == "__main__":
    sys.exit(main())
