"""The package version, in a leaf module: code at any layer (export, cli) reads it without importing
the package root (whose lazy names reach up to the API)."""

__version__ = "0.1.0"
