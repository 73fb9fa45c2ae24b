"""The package version: the one place it is written (CMake and pyproject.toml read it)."""

__version__ = "0.1.0"
