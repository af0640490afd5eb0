"""vocalmix: mix a vocal into a backing track and hand back editable parameters."""

from vocalmix._version import __version__

__all__ = ["__version__"]
