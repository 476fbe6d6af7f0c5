"""atomfast: fast, verified cryptocurrency market-data collector."""

__version__ = "0.1.0"
