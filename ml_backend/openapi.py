"""The OpenAPI 3.1 description served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: JSON, description: str = "") -> JSON:
    return {"description": description or "JSON", "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json_body(_ref("Error"), "Malformed JSON (invalid_json)"),
    "401": _json_body(_ref("Error"), "Missing or wrong basic auth (unauthorized)"),
    "413": _json_body(_ref("Error"), "Body larger than MAX_BODY_BYTES (payload_too_large)"),
    "422": _json_body(_ref("Error"), "A field is missing or invalid (invalid_request, invalid_label_config)"),
}

_SCHEMAS: JSON = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "examples": ["invalid_request", "not_trained"]},
            "detail": {"type": "string", "examples": ["tasks[3].data: expected an object of task data"]},
            "field": {"type": "string", "description": "Path of the offending field, when there is one."},
        },
    },
    "Task": {
        "type": "object",
        "required": ["data"],
        "properties": {"id": {"description": "Any JSON scalar; echoed back."}, "data": {"type": "object"}},
    },
    "Prediction": {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"type": "object"}},
            "score": {"type": "number", "description": "Model confidence (1 - least confidence), 0..1."},
            "model_version": {"type": "string"},
        },
    },
    "ScoreItem": {
        "type": "object",
        "properties": {
            "id": {},
            "probabilities": {
                "type": "array",
                "items": {"type": "number"},
                "description": "single/multi only",
            },
            "least_confidence": {"type": "number"},
            "margin": {"type": "number"},
            "entropy": {"type": "number"},
            "score": {"type": "number"},
        },
    },
}


def openapi_document(version: str) -> JSON:
    paths: JSON = {
        "/health": {
            "get": {"summary": "Liveness (no auth)", "responses": {"200": _json_body({"type": "object"})}}
        },
        "/": {
            "get": {"summary": "What this service is", "responses": {"200": _json_body({"type": "object"})}}
        },
        "/setup": {
            "post": {
                "summary": "Label Studio: current model version and the controls served for a config",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["project", "schema"],
                        "properties": {
                            "project": {"type": "string", "examples": ["12.1764300000"]},
                            "schema": {"type": "string", "description": "The labeling config XML"},
                            "hostname": {"type": "string"},
                            "access_token": {"type": "string"},
                            "extra_params": {},
                        },
                    }
                ),
                "responses": {
                    "200": _json_body(
                        {
                            "type": "object",
                            "properties": {
                                "model_version": {"type": "string"},
                                "controls": {"type": "array", "items": {"type": "object"}},
                                "unsupported": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                    **_ERRORS,
                },
            }
        },
        "/predict": {
            "post": {
                "summary": "Label Studio: pre-labels for a batch of tasks, matched by position",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["project", "label_config", "tasks"],
                        "properties": {
                            "project": {"type": "string"},
                            "label_config": {"type": "string"},
                            "tasks": {"type": "array", "items": _ref("Task")},
                            "params": {"type": "object"},
                        },
                    }
                ),
                "responses": {
                    "200": _json_body(
                        {
                            "type": "object",
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "description": "Per task: [] (no prediction) or [Prediction]",
                                    "items": {"type": "array", "items": _ref("Prediction")},
                                },
                                "model_version": {"type": "string"},
                            },
                        }
                    ),
                    **_ERRORS,
                },
            }
        },
        "/webhook": {
            "post": {
                "summary": "Label Studio events: START_TRAINING and annotation events schedule training",
                "description": "Accepts basic auth or the X-Webhook-Secret header. Answers at once.",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["action"],
                        "properties": {"action": {"type": "string"}, "project": {"type": "object"}},
                    }
                ),
                "responses": {"200": _json_body({"type": "object"}), **_ERRORS},
            }
        },
        "/score": {
            "post": {
                "summary": "Score raw items (not yet in Label Studio) for active learning",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["project", "tasks"],
                        "properties": {
                            "project": {"type": "integer"},
                            "control": {
                                "type": "string",
                                "description": "Default: the first trained control",
                            },
                            "tasks": {"type": "array", "items": _ref("Task")},
                        },
                    }
                ),
                "responses": {
                    "200": _json_body(
                        {
                            "type": "object",
                            "properties": {
                                "model_version": {"type": "string"},
                                "control": {"type": "string"},
                                "kind": {"enum": ["single", "multi", "spans"]},
                                "classes": {"type": "array", "items": {"type": "string"}},
                                "items": {"type": "array", "items": _ref("ScoreItem")},
                            },
                        }
                    ),
                    "409": _json_body(_ref("Error"), "The project has no trained model (not_trained)"),
                    **_ERRORS,
                },
            }
        },
        "/versions": {
            "get": {
                "summary": "Stored model versions, newest first",
                "parameters": [{"name": "project", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": _json_body({"type": "object"}), **_ERRORS},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text exposition",
                "responses": {"200": {"description": "text/plain", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json_body({})}}},
    }
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
        "security": [{"basic": []}],
        "paths": paths,
    }
