"""HTTP errors: a status, a stable ``code`` and a message that says what to do.

Every error response is JSON ``{"detail": "...", "code": "..."}``. Library errors
(:mod:`vocalmix.core.errors`) keep their own ``code``; their status follows their class
(:data:`STATUS`), and the server adds its own hint for the classes it can help with
(:data:`HINTS`, in the terms of the HTTP API: form fields, not command-line flags), as the
command line does with its flags.
"""

from __future__ import annotations

import errno

from vocalmix.core.errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioTooLargeError,
    ChannelLayoutError,
    ModelError,
    ParamsError,
    TargetUnreachableError,
    UnreadableAudioError,
    VocalmixError,
)


class ApiError(Exception):
    """An error with its HTTP status, a stable code and a message a person can act on."""

    def __init__(self, status: int, detail: str, *, code: str = "request.invalid",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, str]:
        return {"detail": self.detail, "code": self.code}


#: the HTTP status of a library error, by class (the first match wins)
STATUS: tuple[tuple[type[VocalmixError], int], ...] = (
    (UnreadableAudioError, 415),
    (AudioTooLargeError, 413),
    (AudioFileNotFoundError, 404),
    (AudioError, 422),
    (ParamsError, 422),
    (TargetUnreachableError, 422),
    (ModelError, 503),
)

#: what the server adds to a library error's message, by class
HINTS: dict[type[VocalmixError], str] = {
    ChannelLayoutError: " (send the form field fold=mean or fold=first2)",
    AudioTooLargeError: " (this server's limit: --max-decoded-mb)",
}


def from_library(e: VocalmixError) -> ApiError:
    """The :class:`ApiError` of a library error: its status, its code, its message with
    the server's hint."""
    status = next((s for cls, s in STATUS if isinstance(e, cls)), 422)
    hint = next((h for cls, h in HINTS.items() if isinstance(e, cls)), "")
    return ApiError(status, f"{e}{hint}", code=e.code)


def from_exception(e: BaseException) -> ApiError:
    """Any exception of a job as an :class:`ApiError` (internal errors are 500)."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, VocalmixError):
        return from_library(e)
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(507, "the server's storage is full; try again later or ask its "
                             "operator to free space", code="storage.full")
    # (the exception's own words stay in the server's log: they may name its storage)
    return ApiError(500, f"internal error ({type(e).__name__}); please report it with the "
                         "time of the request (the server's log has the details)",
                    code="internal")


def not_found(mid: str) -> ApiError:
    shown = mid if len(mid) <= 40 else mid[:40] + "..."
    return ApiError(404, f"no mix with id {shown!r}: it never existed, was deleted, or "
                         "expired (mixes are kept for the server's time to live)",
                    code="mix.not_found")


def busy(queued: int, retry_after_s: int = 10) -> ApiError:
    return ApiError(503, f"the server is busy ({queued} jobs waiting for a worker); try "
                         f"again in {retry_after_s} s", code="server.busy",
                    headers={"Retry-After": str(retry_after_s)})


__all__ = ["ApiError", "HINTS", "STATUS", "busy", "from_exception", "from_library",
           "not_found"]
