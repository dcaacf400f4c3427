"""Drift alerts: each alert once — logged, kept in the sync state, POSTed to an optional webhook.

The engine recomputes every alert on every sync; the key (what, who, which control, since when)
tells a new alert from one already raised. Delivery is retried on later syncs until it succeeds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0


def alert_key(alert: Mapping[str, Any]) -> str:
    identity = [alert.get(k) for k in ("metric", "scope", "annotator", "control", "since")]
    return hashlib.sha1(json.dumps(identity, default=str).encode()).hexdigest()[:16]


def merge_alerts(
    known: list[dict[str, Any]], found: Iterable[Mapping[str, Any]], now: str, *, deliver: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(known alerts with the new ones appended, the new ones).

    ``delivered`` is False for an alert still to POST, None when no webhook was configured.
    """
    seen = {a["key"] for a in known}
    new = []
    for alert in found:
        key = alert_key(alert)
        if key not in seen:
            seen.add(key)
            new.append({**alert, "key": key, "first_seen": now, "delivered": False if deliver else None})
    return [*known, *new], new


def describe(alert: Mapping[str, Any]) -> str:
    who = f"annotator {alert['annotator']}" if alert.get("annotator") else "the project"
    control = f" ({alert['control']})" if alert.get("control") else ""
    return (
        f"{alert.get('metric')}{control} of {who} moved from {alert.get('baseline')} to "
        f"{alert.get('current')} since {alert.get('since')} (p={alert.get('p_value')})"
    )


def post_alerts(url: str, project_id: int, alerts: list[dict[str, Any]]) -> bool:
    """POST ``{"project_id", "alerts"}`` to ``url``; False (logged) when it fails."""
    payload = {
        "project_id": project_id,
        "alerts": [{k: v for k, v in a.items() if k != "delivered"} for a in alerts],
    }
    try:
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("drift alert webhook %s failed (%s); retrying at the next sync", url, type(exc).__name__)
        return False
    return True


def raise_alerts(
    state_alerts: list[dict[str, Any]],
    found: Iterable[Mapping[str, Any]],
    *,
    project_id: int,
    now: str,
    webhook: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Log the new alerts, deliver every undelivered one; returns (state alerts, new alerts)."""
    merged, new = merge_alerts(state_alerts, found, now, deliver=webhook is not None)
    for alert in new:
        log.warning("project %d: drift alert: %s", project_id, describe(alert))
    if webhook is None:
        return merged, new
    pending = [a for a in merged if a.get("delivered") is False]
    if pending and post_alerts(webhook, project_id, pending):
        for alert in pending:
            alert["delivered"] = True
    return merged, new
