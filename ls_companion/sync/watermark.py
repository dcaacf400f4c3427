"""Watermark arithmetic: which tasks a sync lists, and how far the next one may skip. Pure functions.

LS filters ``updated_at`` strictly greater than a value. A sync lists tasks updated after
``watermark - overlap`` and then moves the watermark to the newest ``updated_at`` it received, but
never past the server's clock at the start of the listing: a task updated while the listing pages
(ordered by id) can be missed by that listing, and its ``updated_at`` is later than that start. The
overlap also covers transactions that commit a little after their timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ls_companion.client import format_filter_time


def parse_time(value: str) -> datetime:
    """An LS timestamp (``2026-11-28T04:50:24.791477Z``) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The one text form of a watermark: what LS's Datetime filter parses."""
    return format_filter_time(value)


def list_since(watermark: str | None, overlap_seconds: float) -> str | None:
    """The ``updated_since`` value of the next listing; None (everything) without a watermark."""
    if watermark is None:
        return None
    return format_time(parse_time(watermark) - timedelta(seconds=overlap_seconds))


def advance(
    watermark: str | None, received: Iterable[str | None], listing_started: datetime | None
) -> str | None:
    """The new watermark: the newest ``updated_at`` received, capped at the listing's start.

    Never moves backwards; unchanged when nothing was received.
    """
    times = [parse_time(value) for value in received if value]
    if not times:
        return watermark
    candidate = max(times)
    if listing_started is not None:
        candidate = min(candidate, listing_started)
    if watermark is not None and candidate <= parse_time(watermark):
        return watermark
    return format_time(candidate)
