"""Venues: everything one exchange's feed and REST API need to be known by, one package per venue."""
