"""Frame sources behind one small interface (see `base.FrameSource`)."""

from __future__ import annotations

from ingest.sources.base import FeedEvent, FileRow, FrameSource, SourceItem

__all__ = ["FeedEvent", "FileRow", "FrameSource", "SourceItem"]
