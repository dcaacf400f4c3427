"""Pure helpers of the SDK wrapper."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ls_companion.client import LabelStudioClient, merge_meta, tasks_query
from ls_companion.errors import LabelStudioAuthError


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


def test_tasks_query_is_the_data_manager_filter() -> None:
    updated = {
        "filter": "filter:tasks:updated_at",
        "operator": "greater",
        "type": "Datetime",
        "value": "2026-01-01T00:00:00Z",
    }
    assert tasks_query(updated_since="2026-01-01T00:00:00Z") == {
        "filters": {"conjunction": "and", "items": [updated]}
    }
    annotated = {"filter": "filter:tasks:total_annotations", "type": "Number", "value": 0}
    both = tasks_query(updated_since="2026-01-01T00:00:00Z", annotated=True)
    assert both["filters"]["items"] == [updated, {**annotated, "operator": "greater"}]
    assert tasks_query(annotated=False)["filters"]["items"] == [{**annotated, "operator": "equal"}]
    assert tasks_query() == {}
    json.dumps(both)


def _jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_an_expired_personal_access_token_is_one_auth_error_before_any_request() -> None:
    """The SDK checks a personal access token's expiry when the client is made (nothing listens on
    port 9): our one-line auth error, with Label Studio's SDK's reason, not its ApiError."""
    expired = _jwt({"token_type": "refresh", "exp": 1_000_000_000, "user_id": 1})
    with pytest.raises(
        LabelStudioAuthError, match=r"rejected the API key \(HTTP 401\).*: .*expired"
    ) as caught:
        LabelStudioClient("http://127.0.0.1:9", expired)
    assert "Traceback" not in str(caught.value)
