"""Pure helpers of the SDK wrapper."""

from __future__ import annotations

import json
from typing import Any

from ls_companion.client import merge_meta, updated_since_query


def test_merge_meta_keeps_foreign_keys_and_merges_our_namespace() -> None:
    current: dict[str, Any] = {
        "reviewer": "ann",
        "ls_companion": {"source_id": "a1", "quality": {"agreement": 0.1}},
    }
    merged = merge_meta(current, {"quality": {"agreement": 0.9}})
    assert merged == {"reviewer": "ann", "ls_companion": {"source_id": "a1", "quality": {"agreement": 0.9}}}
    assert current["ls_companion"]["quality"] == {"agreement": 0.1}  # input untouched


def test_merge_meta_replaces_a_foreign_scalar_under_our_key() -> None:
    assert merge_meta({"ls_companion": "junk"}, {"a": 1}) == {"ls_companion": {"a": 1}}
    assert merge_meta({}, {"a": 1}, namespace="x") == {"x": {"a": 1}}


def test_updated_since_query_is_the_data_manager_filter() -> None:
    query = updated_since_query("2026-01-01T00:00:00Z")
    item = query["filters"]["items"][0]
    assert item == {
        "filter": "filter:tasks:updated_at",
        "operator": "greater",
        "type": "Datetime",
        "value": "2026-01-01T00:00:00Z",
    }
    json.dumps(query)
