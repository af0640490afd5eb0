"""Who may talk to the server: a Host allow-list, same-origin writes, security headers.

The API has no authentication: it is meant for the user's own machine (loopback) or a
network the operator trusts. Two browser attacks reach a loopback server anyway, and
:class:`Guard` stops both:

* **Cross-site requests.** Any web page can send a "simple" POST (a form, or
  ``fetch`` with ``mode: "no-cors"``) to ``http://127.0.0.1:8000`` without a preflight.
  Requests that change something (POST, PUT, PATCH, DELETE) are refused with 403 when
  the browser says they come from another site: a ``Sec-Fetch-Site`` other than
  ``same-origin`` or ``none``, or an ``Origin`` that is not this server's own. Clients
  that are not browsers (curl, a karaoke app's backend) send neither header and pass.
* **DNS rebinding.** A hostile name that resolves to 127.0.0.1 makes the browser treat
  the server as that site's own, Origin and all; but the ``Host`` header still carries
  the hostile name. Requests whose Host is not on the allow-list get 421.

Every response carries ``Content-Security-Policy`` (only this server's own scripts,
styles, media and connections; no framing), ``X-Frame-Options: DENY``,
``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

#: the names a loopback server answers to
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
#: FastAPI's own documentation pages load their scripts and styles from a CDN
CDN_PAGES = ("/docs", "/redoc")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer")]


def host_name(host_header: str) -> str:
    """The host name of a ``Host`` header (no port, no brackets, no trailing dot,
    lower case)."""
    h = host_header.strip().lower()
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host_name(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_name(host)).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The Host allow-list for a server listening on ``bind_host``: the loopback names,
    the bind address itself and ``extra``; ``None`` (any Host) for a wildcard address
    (``0.0.0.0``, ``::``) with no ``extra`` names, where the operator has chosen to
    expose the server to whatever name reaches it."""
    extra = [host_name(h) for h in extra if h]
    if host_name(bind_host) in ("0.0.0.0", "::", "") and not extra:
        return None
    return frozenset({*LOOPBACK_HOSTS, host_name(bind_host), *extra})


class Guard:
    """ASGI middleware: Host allow-list (421), same-origin writes (403), security
    headers on every response.

    Args:
        app: the ASGI application.
        allowed_hosts: host names (see :func:`host_name`) accepted in ``Host``; ``None``
            accepts any.
    """

    def __init__(self, app: Any, allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS) -> None:
        self.app = app
        self.allowed = (None if allowed_hosts is None
                        else frozenset(host_name(h) for h in allowed_hosts))

    @staticmethod
    def _headers(scope: Any) -> dict[bytes, bytes]:
        return {k.lower(): v for k, v in scope.get("headers") or []}

    def refusal(self, scope: Any) -> tuple[int, str, str] | None:
        """``(status, code, detail)`` of a request to refuse, or ``None``."""
        h = self._headers(scope)
        host = h.get(b"host", b"").decode("latin-1")
        if self.allowed is not None and host and host_name(host) not in self.allowed:
            shown = host if len(host) <= 60 else host[:60] + "..."
            return (421, "request.host", f"this server does not answer to the name {shown!r}"
                    "; use the address it was started on (e.g. http://127.0.0.1:8000/) or "
                    "start it with --allowed-host")
        if scope.get("method") not in UNSAFE_METHODS:
            return None
        site = h.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site and site not in ("same-origin", "none"):
            return (403, "request.cross_site", "refused: this request comes from another "
                    f"web site ({site}); the page of this server or a program may change "
                    "mixes, other sites may not")
        origin = h.get(b"origin")
        if origin is not None:
            o = origin.decode("latin-1")
            parts = urlsplit(o) if o != "null" else None
            if parts is None or not host or parts.netloc.lower() != host.strip().lower():
                shown = o if len(o) <= 60 else o[:60] + "..."
                return (403, "request.cross_origin", f"refused: a page of {shown!r} may "
                        "not change mixes on this server (only its own page may)")
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        extra = list(HEADERS)
        if not any(path == p or path.startswith(p + "/") for p in CDN_PAGES):
            extra.append((b"content-security-policy", CSP.encode()))
        refused = self.refusal(scope)
        if refused is not None:
            status, code, detail = refused
            body = json.dumps({"detail": detail, "code": code}).encode()
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _v in msg.get("headers") or []}
                msg = {**msg, "headers": [*(msg.get("headers") or []),
                                          *((k, v) for k, v in extra if k not in have)]}
            await send(msg)

        await self.app(scope, receive, with_headers)


__all__ = ["CSP", "Guard", "LOOPBACK_HOSTS", "allowed_hosts_for", "host_name", "is_loopback"]
