"""Request bodies read with a limit, never whole before the check.

The body is streamed: a Content-Length over the limit is refused before a byte is read, a streamed body
is cut off the moment it passes the limit, and a gzip body (Content-Encoding: gzip, or a file that starts
with gzip's magic bytes) is inflated incrementally with the same limit on the inflated size, so a small
gzip that inflates to gigabytes costs at most the limit in memory.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
STEP = 1_048_576


class BodyError(ValueError):
    """A body the API will not read: `status` is 413 (too large), 415 (encoding) or 400 (corrupt)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _mb(limit: int) -> str:
    return f"{limit / 1_048_576:g} MB"


class _Inflater:
    """gzip -> bytes, at most `limit` of them in all; several gzip members in a row are one body."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = bytearray()
        self.d = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> None:
        while data:
            room = self.limit - len(self.out)
            try:
                # max_length: never inflate more than one byte past the limit, whatever the ratio, and in
                # pieces of at most STEP (one call's output is built whole before it is appended)
                chunk = self.d.decompress(data, min(room + 1, STEP))
            except zlib.error as exc:
                raise BodyError(400, f"body: not valid gzip ({exc})") from None
            self.out += chunk
            if len(self.out) > self.limit:
                raise BodyError(413, f"body: inflates to more than {_mb(self.limit)} (API_MAX_BODY_MB)")
            if self.d.eof:
                data = self.d.unused_data
                if data:
                    self.d = zlib.decompressobj(_GZIP_WBITS)
            else:
                data = self.d.unconsumed_tail

    def finish(self) -> bytes:
        if not self.d.eof:
            raise BodyError(400, "body: gzip data ends early (truncated file?)")
        return bytes(self.out)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, inflated if it is gzip; BodyError when it is too large, corrupt or oddly encoded."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise BodyError(415, f"content-encoding: {encoding[:40]!r} is not supported (send gzip or plain)")
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BodyError(400, "content-length: not a number") from None
        if declared > limit:
            raise BodyError(413, f"body: {declared} bytes, more than {_mb(limit)} (API_MAX_BODY_MB)")
    raw = bytearray()
    inflater: _Inflater | None = _Inflater(limit) if encoding in ("gzip", "x-gzip") else None
    async for chunk in request.stream():
        if not chunk:
            continue
        if inflater is None and not raw and len(chunk) >= 2 and chunk[:2] == GZIP_MAGIC:
            inflater = _Inflater(limit)  # a .csv.gz file sent as it is
        if inflater is not None:
            inflater.feed(chunk)
            continue
        raw += chunk
        if len(raw) > limit:
            raise BodyError(413, f"body: more than {_mb(limit)} (API_MAX_BODY_MB)")
    if inflater is not None:
        return inflater.finish()
    if raw[:2] == GZIP_MAGIC:  # the magic bytes arrived split (a first chunk of one byte): still bounded
        inflater = _Inflater(limit)
        inflater.feed(bytes(raw))
        return inflater.finish()
    return bytes(raw)
