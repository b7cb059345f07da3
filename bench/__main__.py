"""`python -m bench`: every figure of the benchmark contract in one run (see bench/run_all.py)."""

from bench.run_all import main

main()
