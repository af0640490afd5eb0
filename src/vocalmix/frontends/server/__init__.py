"""The local web page and HTTP API (FastAPI); see :mod:`vocalmix.frontends.server.app`."""

from vocalmix.frontends.server.app import create_app

__all__ = ["create_app"]
