"""The `ncsn-fast` command line (main.py); one module per command."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
