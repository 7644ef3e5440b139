"""pullthrough: a Python package index server (pull-through cache, private indexes)."""

__version__ = "0.1.0"
