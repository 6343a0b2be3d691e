"""Tiny real trainings, one module per sample log (see samples/README.md)."""
