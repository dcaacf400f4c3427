"""The OpenAPI 3.1 description served at ``/openapi.json``: what this process accepts, as it is configured.

The request schemas state exactly what ``ml_backend.protocol`` accepts (its project-id pattern, its
limits), and each route declares the auth it really needs, so schemathesis can hold the server to it
(``tests/contract/test_contract.py``). A labeling config's XML cannot be described in JSON Schema: it
carries ``format: label-config``, for which the contract test draws real configs.
"""

from __future__ import annotations

from typing import Any

from ml_backend.protocol import ANNOTATION_ACTIONS, MAX_PROJECT_ID, PROJECT_ID_PATTERN, TRAIN_ACTION
from ml_backend.settings import BackendSettings

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: JSON, description: str = "JSON") -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> JSON:
    return _json_body(_ref("Error"), description)


def _object(properties: JSON, required: tuple[str, ...] = (), **extra: Any) -> JSON:
    return {"type": "object", "required": list(required), "properties": properties, **extra}


_PROJECT: JSON = {
    "description": "A project id, or Label Studio's project uid 'ID.TIMESTAMP'.",
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_PROJECT_ID},
        {"type": "string", "pattern": PROJECT_ID_PATTERN, "examples": ["12.1764300000"]},
    ],
}
_SCALAR: JSON = {"type": ["string", "number", "integer", "boolean", "null"]}
_UNAUTHORIZED: JSON = {
    **_error("Missing or wrong credentials (unauthorized)"),
    "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
}

_SCHEMAS: JSON = {
    "Error": _object(
        {
            "error": {"type": "string", "examples": ["invalid_request", "not_trained"]},
            "detail": {"type": "string", "examples": ["tasks[3].data: expected an object of task data"]},
            "field": {"type": "string", "description": "Path of the offending field, when there is one."},
        },
        ("error", "detail"),
    ),
    "Prediction": _object(
        {
            "result": {"type": "array", "items": {"type": "object"}},
            "score": {"type": "number", "description": "Model confidence (1 - least confidence), 0..1."},
            "model_version": {"type": "string"},
        }
    ),
    "ScoreItem": _object(
        {
            "id": _SCALAR,
            "probabilities": {
                "type": "array",
                "items": {"type": "number"},
                "description": "single/multi only",
            },
            "least_confidence": {"type": "number"},
            "margin": {"type": "number"},
            "entropy": {"type": "number"},
            "score": {"type": "number"},
        }
    ),
    "OutOfFold": _object(
        {
            "task_ids": {"type": "array", "items": {"type": "integer"}},
            "classes": {"type": "array", "items": {"type": "string"}},
            "proba": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
                "description": "One row per task id, in the classes' order",
            },
        },
        ("task_ids", "classes", "proba"),
    ),
}


def openapi_document(version: str, settings: BackendSettings) -> JSON:
    """The document for a backend running with ``settings`` (its auth and limits)."""
    basic: list[JSON] = [{"basic": []}] if settings.auth_enabled else []
    webhook = basic + ([{"webhookSecret": []}] if settings.webhook_secret else [])
    config: JSON = {"type": "string", "format": "label-config", "maxLength": settings.max_label_config_length}
    tasks: JSON = {
        "type": "array",
        "maxItems": settings.max_tasks,
        "items": _object({"id": _SCALAR, "data": {"type": "object"}}, ("data",)),
    }

    def operation(
        summary: str,
        ok: JSON,
        *,
        body: JSON | None = None,
        security: list[JSON] = basic,
        other: JSON | None = None,
        **more: Any,
    ) -> JSON:
        responses: JSON = {"200": ok, **(other or {})}
        if body is not None:
            responses["400"] = _error(
                f"Not a JSON object, or nested deeper than {settings.max_json_depth} (invalid_json)"
            )
            responses["413"] = _error(
                f"Body over {settings.max_body_bytes:,} bytes, more than {settings.max_tasks:,} tasks, or a"
                f" labeling config over {settings.max_label_config_length:,} characters (payload_too_large)"
            )
            more["requestBody"] = {"required": True, **_json_body(body)}
        if body is not None or "parameters" in more:
            responses["422"] = _error("A field is missing or invalid (invalid_request, invalid_label_config)")
        if security:
            responses["401"] = _UNAUTHORIZED
        return {"summary": summary, "security": security, "responses": responses, **more}

    project_query: JSON = {
        "name": "project",
        "in": "query",
        "schema": {"type": "string", "pattern": PROJECT_ID_PATTERN},
    }
    counted = sorted({TRAIN_ACTION, *ANNOTATION_ACTIONS})
    paths: JSON = {
        "/health": {"get": operation("Liveness (no auth)", _json_body({"type": "object"}), security=[])},
        "/": {"get": operation("What this service is", _json_body({"type": "object"}))},
        "/setup": {
            "post": operation(
                "Label Studio: current model version and the controls served for a config",
                _json_body(
                    _object(
                        {
                            "model_version": {"type": "string"},
                            "controls": {"type": "array", "items": {"type": "object"}},
                            "unsupported": {"type": "array", "items": {"type": "object"}},
                        }
                    )
                ),
                body=_object(
                    {
                        "project": _PROJECT,
                        "schema": {**config, "description": "The labeling config XML"},
                        "hostname": {"type": ["string", "null"]},
                        "access_token": {"type": ["string", "null"]},
                        "extra_params": {},
                    },
                    ("project", "schema"),
                ),
            )
        },
        "/predict": {
            "post": operation(
                "Label Studio: pre-labels for a batch of tasks, matched by position",
                _json_body(
                    _object(
                        {
                            "results": {
                                "type": "array",
                                "description": "Per task: [] (no prediction) or [Prediction]",
                                "items": {"type": "array", "items": _ref("Prediction")},
                            },
                            "model_version": {"type": "string"},
                        }
                    )
                ),
                body=_object(
                    {
                        "project": _PROJECT,
                        "label_config": config,
                        "tasks": tasks,
                        "params": {"type": ["object", "null"]},
                    },
                    ("project", "label_config", "tasks"),
                ),
            )
        },
        "/webhook": {
            "post": operation(
                "Label Studio events: START_TRAINING and annotation events schedule training",
                _json_body({"type": "object"}),
                body=_object(
                    {
                        "action": {"type": "string"},
                        "project": {
                            "anyOf": [{"type": "null"}, _PROJECT, _object({"id": _PROJECT})],
                        },
                    },
                    ("action",),
                    **{
                        "if": _object({"action": {"enum": counted}}, ("action",)),
                        "then": _object(
                            {"project": {"anyOf": [_PROJECT, _object({"id": _PROJECT}, ("id",))]}},
                            ("project",),
                        ),
                    },
                ),
                description="Accepts basic auth or the X-Webhook-Secret header. Answers at once. "
                f"{', '.join(counted)} need the project; other actions are acknowledged and ignored.",
                security=webhook,
            )
        },
        "/score": {
            "post": operation(
                "Score raw items (not yet in Label Studio) for active learning",
                _json_body(
                    _object(
                        {
                            "model_version": {"type": "string"},
                            "control": {"type": "string"},
                            "kind": {"enum": ["single", "multi", "spans"]},
                            "classes": {"type": "array", "items": {"type": "string"}},
                            "items": {"type": "array", "items": _ref("ScoreItem")},
                            "skipped": {
                                "type": "array",
                                "items": _object(
                                    {"index": {"type": "integer"}, "id": _SCALAR, "field": {"type": "string"}}
                                ),
                                "description": "Tasks left out: their image could not be fetched or decoded",
                            },
                        }
                    )
                ),
                body=_object(
                    {
                        "project": _PROJECT,
                        "control": {
                            "type": ["string", "null"],
                            "description": "Default: the first trained control",
                        },
                        "tasks": tasks,
                    },
                    ("project", "tasks"),
                ),
            )
        },
        "/versions": {
            "get": operation(
                "Stored model versions, newest first",
                _json_body({"type": "object"}),
                parameters=[{**project_query, "required": False}],
            )
        },
        "/oof": {
            "get": operation(
                "The latest version's out-of-fold probabilities of its training tasks, per control;"
                " the ETag is the version (or 'untrained')",
                _json_body(
                    _object(
                        {
                            "project": {"type": "integer"},
                            "model_version": {
                                "type": ["string", "null"],
                                "description": "null: not trained yet (then no controls)",
                            },
                            "controls": {
                                "type": "object",
                                "description": "Per control; a control without cross-validation is absent",
                                "additionalProperties": _ref("OutOfFold"),
                            },
                        },
                        ("project", "model_version", "controls"),
                    )
                ),
                parameters=[
                    {**project_query, "required": True},
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "description": "The ETag of an earlier answer (the model version, quoted)",
                        "schema": {"type": "string"},
                    },
                ],
                other={
                    "304": {"description": "The latest version is still the one in If-None-Match: no body"}
                },
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus text exposition",
                {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            )
        },
        "/openapi.json": {"get": operation("This document", _json_body({"type": "object"}))},
    }
    paths["/score"]["post"]["responses"]["409"] = _error("The project has no trained model (not_trained)")
    # Task media behind a personal access token that Label Studio did not exchange.
    unreachable = _error("Label Studio did not answer (label_studio_unavailable)")
    for path in ("/predict", "/score"):
        paths[path]["post"]["responses"]["503"] = unreachable
    return {
        "openapi": "3.1.0",
        "info": {"title": "ls-companion ML backend", "version": version},
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "webhookSecret": {"type": "apiKey", "in": "header", "name": "X-Webhook-Secret"},
            },
        },
        "paths": paths,
    }
