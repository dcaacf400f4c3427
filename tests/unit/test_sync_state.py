"""Watermark arithmetic of the sync (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from ls_companion.records import format_filter_time
from ls_companion.sync.state import advance, list_since, parse_time


def test_times_round_trip_in_the_format_label_studio_filters_accept() -> None:
    value = "2026-11-28T04:50:24.791477Z"
    assert format_filter_time(parse_time(value)) == value
    assert format_filter_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"


def test_listing_starts_an_overlap_before_the_watermark() -> None:
    assert list_since(None, 60) is None
    assert list_since("2026-11-28T10:00:30.500000Z", 60) == "2026-11-28T09:59:30.500000Z"
    assert list_since("2026-11-28T10:00:30.500000Z", 0) == "2026-11-28T10:00:30.500000Z"


def test_watermark_moves_to_the_newest_update_received() -> None:
    received = ["2026-11-28T10:00:01.000000Z", None, "2026-11-28T10:00:03.250000Z"]
    assert advance(None, received, None) == "2026-11-28T10:00:03.250000Z"


def test_watermark_never_passes_the_start_of_the_listing() -> None:
    # A task updated while we paged may have been missed; everything updated before we started was seen.
    started = datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC)
    received = ["2026-11-28T10:00:01.000000Z", "2026-11-28T10:00:09.000000Z"]
    assert advance(None, received, started) == "2026-11-28T10:00:02.000000Z"


def test_watermark_never_moves_backwards_and_stays_without_news() -> None:
    mark = "2026-11-28T10:00:05.000000Z"
    assert advance(mark, [], None) == mark
    assert advance(mark, ["2026-11-28T10:00:04.000000Z"], None) == mark
    started = datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC)
    assert advance(mark, ["2026-11-28T10:00:09.000000Z"], started) == mark
