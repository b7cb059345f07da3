"""`python -m worker.analytics`: the batch and research commands (argparse and files) over `qs_analytics`."""
