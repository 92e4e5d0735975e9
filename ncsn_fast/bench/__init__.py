"""The benchmarks behind `ncsn-fast bench`: timing.py (one timing method, the environment), results.py (JSON and
markdown), one module per suite (ops, forward, sampler, ncsnpp, quality with its test beds), suites.py (which run)."""

from .suites import run

__all__ = ["run"]
