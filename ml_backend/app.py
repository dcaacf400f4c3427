"""The Flask app: thin routes over ``BackendService``, one auth check and one error handler.

Every error becomes ``{"error": code, "detail": "..."}`` JSON here and nowhere else; no traceback ever
reaches a response (unexpected errors are logged and answered with a generic 500).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from base64 import b64decode
from binascii import Error as BinasciiError
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ml_backend import __version__
from ml_backend.errors import BackendError, PayloadTooLarge, Unauthorized
from ml_backend.openapi import openapi_document
from ml_backend.protocol import (
    Limits,
    parse_json,
    parse_predict,
    parse_project_query,
    parse_score,
    parse_setup,
    parse_webhook,
)
from ml_backend.service import BackendService
from ml_backend.settings import BackendSettings

log = logging.getLogger(__name__)

_OPEN_ROUTES = frozenset({"/health"})
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _json(payload: Any, status: int = 200) -> Response:
    try:
        text: bytes | str = orjson.dumps(payload)  # a 1,000-task answer in 1/20 of json's time
    except TypeError:  # what orjson refuses (integers past 64 bits, keys not strings): json
        text = json.dumps(payload, separators=(",", ":"))
    return Response(text, status=status, mimetype="application/json")


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (BinasciiError, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class _Auth:
    def __init__(self, settings: BackendSettings) -> None:
        self.user = settings.basic_auth_user or ""
        self.password = settings.basic_auth_pass.get_secret_value() if settings.basic_auth_pass else ""
        self.basic = settings.auth_enabled
        self.secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""

    def _basic_ok(self) -> bool:
        given = _basic_credentials()
        return given is not None and _same(given[0], self.user) & _same(given[1], self.password)

    def check(self, route: str) -> None:
        if route in _OPEN_ROUTES:
            return
        if route == "/webhook":
            if not (self.basic or self.secret):
                return
            secret = request.headers.get("X-Webhook-Secret", "")
            if (self.secret and secret and _same(secret, self.secret)) or (self.basic and self._basic_ok()):
                return
            raise Unauthorized("send basic auth or the X-Webhook-Secret header")
        if self.basic and not self._basic_ok():
            raise Unauthorized("basic auth required")


def create_app(settings: BackendSettings, service: BackendService) -> Flask:
    app = Flask("ml_backend")
    # Werkzeug answers 413 from Content-Length before reading, and stops reading a chunked body at the
    # limit (without saying so: body() refuses a chunked body that reached it).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    auth = _Auth(settings)
    limits = Limits(settings.max_tasks, settings.max_json_depth, settings.max_label_config_length)
    document = openapi_document(__version__, settings)

    def body() -> dict[str, Any]:
        data = request.get_data(cache=False)
        if request.content_length is None and len(data) >= settings.max_body_bytes:
            raise RequestEntityTooLarge()
        return parse_json(data, limits)

    @app.before_request
    def _before() -> None:
        g.started = time.perf_counter()
        rule = request.url_rule
        g.route = rule.rule if rule is not None else "unmatched"
        auth.check(g.route if rule is not None else request.path)  # an open route stays open to a 405

    @app.after_request
    def _after(response: Response) -> Response:
        started = getattr(g, "started", None)
        if started is not None:
            service.metrics.observe_request(g.route, response.status_code, time.perf_counter() - started)
        return response

    @app.get("/health")
    def health() -> Response:
        return _json(service.health())

    @app.get("/")
    def index() -> Response:
        return _json(
            {
                "name": "ls-companion ML backend",
                "version": __version__,
                "routes": [
                    "/health",
                    "/setup",
                    "/predict",
                    "/webhook",
                    "/score",
                    "/versions",
                    "/oof",
                    "/metrics",
                ],
                "openapi": "/openapi.json",
            }
        )

    @app.post("/setup")
    def setup() -> Response:
        return _json(service.setup(parse_setup(body(), limits)))

    @app.post("/predict")
    def predict() -> Response:
        return _json(service.predict(parse_predict(body(), limits)))

    @app.post("/webhook")
    def webhook() -> Response:
        return _json(service.webhook(parse_webhook(body())))

    @app.post("/score")
    def score() -> Response:
        return _json(service.score(parse_score(body(), limits)).as_json())

    @app.get("/versions")
    def versions() -> Response:
        raw = request.args.get("project")
        return _json(service.versions(parse_project_query(raw) if raw is not None else None))

    @app.get("/oof")
    def out_of_fold() -> Response:
        # The ETag is the model version: a client that holds it gets a bodiless 304 until a new version.
        project = parse_project_query(request.args.get("project"))
        version = service.store.latest_version(project)
        etag = version or "untrained"
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        else:
            response = _json(service.out_of_fold(project, version))
        response.set_etag(etag)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics_text(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi() -> Response:
        return _json(document)

    @app.errorhandler(Exception)
    def handle(exc: Exception) -> Response:
        if isinstance(exc, RequestEntityTooLarge):
            exc = PayloadTooLarge(f"the body is larger than MAX_BODY_BYTES ({settings.max_body_bytes} bytes)")
        if isinstance(exc, BackendError):
            response = _json(exc.payload(), exc.status)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = 'Basic realm="ml-backend"'
            return response
        if isinstance(exc, HTTPException):
            status = exc.code or 400
            code = _HTTP_CODES.get(status, "http_error")
            response = _json({"error": code, "detail": exc.description or exc.name}, status)
            response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() == "allow")  # 405
            return response
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _json({"error": "internal_error", "detail": "unexpected error; see the backend's log"}, 500)

    return app
