"""reprobook: the code behind the executable research book."""

__version__ = "0.1.0"
