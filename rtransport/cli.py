"""Command-line entry point: ``rtransport <command> [args...]``.

Each subcommand lives in its own module, imported only when used; the
remaining command-line arguments are passed through unchanged as a list
to that module's ``main(argv)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "demo": ("rtransport.demo", "run a small two-endpoint demonstration"),
    "doctor": ("rtransport.doctor", "check this machine (GSO/GRO, buffers, MTU)"),
    "perf": ("rtransport.perf", "measure latency and bandwidth"),
    "fabric": ("rtransport.fabric", "multi-process fabric tools"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="rtransport",
        description="User-space RDMA-style reliable datagram transport over UDP.")
    parser.add_argument("--version", action="version",
                        version=f"rtransport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, add_help=False,
                           description=f"{help_} (arguments are passed to {name}; "
                           f"use 'rtransport {name} --help')")
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser()
    if argv and argv[0] in COMMANDS:
        # Pass everything after the command through untouched (argparse's
        # REMAINDER would still try to parse a leading "--help").
        command, args = argv[0], list(argv[1:])
    else:
        ns = parser.parse_args(argv)  # --help, --version, errors
        if ns.command is None:
            parser.print_help()
            return 2
        command, args = ns.command, list(ns.args)
    modname = COMMANDS[command][0]
    try:
        mod = importlib.import_module(modname)
    except ImportError as e:
        if e.name == modname:
            print(f"rtransport: command '{command}' is not available "
                  f"({modname} is not installed)", file=sys.stderr)
            return 2
        raise
    rc = mod.main(args)
    return int(rc) if isinstance(rc, (int, bool)) else 0


if __name__ == "__main__":
    sys.exit(main())
