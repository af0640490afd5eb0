"""vocalmix: mix a vocal into a backing track and hand back editable parameters."""

__version__ = "0.1.0"
