"""The `ncsn-fast` command: sample | generate | info | convert | train | bench | demo, one module per command.

Bad input ends with one line `ncsn-fast: error: ...` on stderr and exit status 2; outputs are
written only once everything has succeeded, each file atomically, so a failed run leaves nothing.
"""

from __future__ import annotations

import argparse
import errno
import sys

from ..errors import NcsnError
from ..hostmem import tune_cpu_allocator
from . import bench, convert, demo, generate, info, sample, train

EXIT_USAGE = 2
COMMANDS = (sample, generate, info, convert, train, bench, demo)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line instead of usage + message
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ncsn-fast",
                     description="Train and sample Noise Conditional Score Networks (NCSN, NCSNv2, NCSN++).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line, recorded with results
    tune_cpu_allocator()  # CPU runs: reuse freed activation memory instead of faulting in fresh pages
    try:
        return args.handler(args)
    except (NcsnError, FloatingPointError) as e:
        print(f"ncsn-fast: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # the disk (full, read-only, gone): what was recorded before it stays
        where = f" ({e.filename})" if e.filename else ""
        why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        print(f"ncsn-fast: error: {why}{where}; what was recorded before is kept (generate: --resume continues)",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ncsn-fast: interrupted", file=sys.stderr)
        return 130
