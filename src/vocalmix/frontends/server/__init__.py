"""The local web page and HTTP API (FastAPI)."""

from vocalmix.frontends.server.app import create_app

__all__ = ["create_app"]
