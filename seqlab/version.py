"""seqlab's version, in a module that imports nothing (so saving and the CLI can read it from anywhere)."""

__version__ = "0.1.0"
