"""The package version (its own module: low layers import it without the package)."""

__version__ = "0.1.0"
