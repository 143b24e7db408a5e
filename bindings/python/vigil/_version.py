"""The C API version this package was written for. Kept apart, as a plain
literal, so the build backend reads it without importing the package
(which loads libvigil)."""
__version__ = "0.1.0"
