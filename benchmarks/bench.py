"""Thin entry point: the benchmark suites live in ncsn_fast/bench/ (an installed CLI cannot import this
folder). `python benchmarks/bench.py [ops|forward|sampler|all] [--device cuda] [--compile default ...]`
is the same as `ncsn-fast bench ...`; results go to benchmarks/results/."""

import sys

from ncsn_fast.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
