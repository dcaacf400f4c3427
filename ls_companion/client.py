"""Thin wrapper over ``label_studio_sdk.LabelStudio`` that returns plain records.

What it adds to the SDK, and why:
- retries with exponential backoff (``RetryPolicy``, the one retry helper of every HTTP caller) on
  connection errors, 429 and 5xx, for idempotent calls only (a POST is retried only when the connection
  was never made, so nothing is created twice);
- task listings that ask for just the fields needed (``include=``), parsed as plain JSON: about 3x
  faster than ``fields=all`` and than the SDK's typed models on LS 1.23;
- an incremental filter on ``tasks:updated_at``;
- ``meta`` updates that merge: LS's PATCH replaces the whole ``meta`` object;
- chunked task and prediction imports;
- one translation of SDK and HTTP errors into ``ls_companion.errors``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ls_companion import META_NAMESPACE
from ls_companion.errors import (
    LabelStudioAPIError,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioUnavailable,
    NotFound,
)
from ls_companion.records import (
    JSON,
    Annotation,
    MLBackend,
    Project,
    Task,
    User,
    Webhook,
    format_filter_time,
)
from ls_companion.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Task fields always listed; the others are opted into by ``list_tasks`` flags.
_TASK_FIELDS = ("id", "meta", "updated_at", "overlap")
# LS applies ``include`` to nested objects too, so the annotation/prediction fields are named here.
_ANNOTATION_FIELDS = (
    "annotations",
    "result",
    "completed_by",
    "was_cancelled",
    "ground_truth",
    "lead_time",
    "created_at",
)
_PREDICTION_FIELDS = ("predictions", "result", "score", "model_version", "cluster")
_PREDICTION_VERSION_FIELDS = ("predictions", "model_version")

DEFAULT_IMPORT_CHUNK = 500
DEFAULT_PAGE_SIZE = 1000
#: Task ids per listing by ids: they go in the URL, which servers cap (gunicorn: 4,094 bytes by default).
MAX_IDS_PER_QUERY = 200


def transient_status(status: int) -> bool:
    """An HTTP status worth asking again for: too many requests, or a server error."""
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently every HTTP caller asks again (Label Studio, the ML backend)."""

    attempts: int = 5
    initial_wait: float = 0.25
    max_wait: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(attempts=settings.retry_attempts, max_wait=settings.retry_max_wait)

    def call(self, what: str, fn: Callable[[], T], retry_on: Callable[[BaseException], bool]) -> T:
        """``fn()``, called again after a growing, jittered pause while it raises an exception
        ``retry_on`` accepts, at most ``attempts`` times in all; the last exception propagates."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.initial_wait, max=self.max_wait, jitter=self.initial_wait
            ),
            retry=retry_if_exception(retry_on),
            before_sleep=lambda state: log.info(
                "%s: attempt %d failed (%s), retrying", what, state.attempt_number, _describe(state)
            ),
            reraise=True,
        )
        return retrying(fn)

    def send(self, what: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        """``request()`` again on connection errors and transient statuses (429, 5xx); the last
        answer is returned whatever its status, the last connection error raised."""

        def attempt() -> httpx.Response:
            response = request()
            if transient_status(response.status_code):
                raise _TransientAnswer(response)
            return response

        try:
            return self.call(
                what, attempt, lambda exc: isinstance(exc, _TransientAnswer | httpx.TransportError)
            )
        except _TransientAnswer as exc:
            return exc.response


class _TransientAnswer(Exception):
    """An answer worth asking again for, raised so that ``RetryPolicy.send`` retries it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code


def merge_meta(
    current: Mapping[str, Any], values: Mapping[str, Any], namespace: str = META_NAMESPACE
) -> JSON:
    """``current`` with ``values`` merged into its ``namespace`` object; every other key is kept as is."""
    ours = current.get(namespace)
    merged_ours = {**(ours if isinstance(ours, Mapping) else {}), **values}
    return {**current, namespace: merged_ours}


def tasks_query(*, updated_since: datetime | str | None = None, annotated: bool | None = None) -> JSON:
    """The Data Manager filters selecting tasks updated strictly after ``updated_since`` and, with
    ``annotated``, those with (True) or without (False) an annotation that was not cancelled: LS's
    ``total_annotations`` leaves cancelled ones out (measured on 1.23.2), as ``is_labeled`` does."""
    items: list[JSON] = []
    if updated_since is not None:
        value = format_filter_time(updated_since) if isinstance(updated_since, datetime) else updated_since
        items.append(
            {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}
        )
    if annotated is not None:
        operator = "greater" if annotated else "equal"
        items.append(
            {"filter": "filter:tasks:total_annotations", "operator": operator, "type": "Number", "value": 0}
        )
    return {"filters": {"conjunction": "and", "items": items}} if items else {}


def _not_json(exc: ApiError) -> bool:
    """A success status whose body did not parse (cut short, or a proxy's HTML page): the SDK's and ours."""
    return exc.status_code is not None and exc.status_code < 400


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return (
        isinstance(exc, ApiError)
        and exc.status_code is not None
        and (transient_status(exc.status_code) or _not_json(exc))
    )


def _never_sent(exc: BaseException) -> bool:
    """The request did not reach the server, so even a POST is safe to repeat."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _short_body(body: Any, limit: int = 300) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("detail", "validation_errors", "message") if body.get(k)]
        text = "; ".join(parts) if parts else json.dumps(body, default=str)
    else:
        text = str(body or "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LabelStudioClient:
    """The companion's only door to Label Studio."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 3.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._retry = retry or RetryPolicy()
        http = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout), follow_redirects=True)
        # Retries are ours (idempotent calls only), so the SDK's own are switched off. A personal access
        # token (a JWT) is exchanged by the SDK for short-lived access tokens; it refuses an expired one here.
        try:
            self._sdk = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=http, max_retries=0)  # type: ignore[no-untyped-call]
        except ApiError as exc:
            http.close()
            raise self._translate("check the API key", exc) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelStudioClient:
        return cls(
            settings.label_studio_url,
            settings.require_api_key(),
            timeout=settings.http_timeout,
            connect_timeout=settings.connect_timeout,
            retry=RetryPolicy.from_settings(settings),
        )

    @property
    def sdk(self) -> LabelStudio:
        """The underlying SDK client, for calls this wrapper does not cover."""
        return self._sdk

    def close(self) -> None:
        self._sdk._client_wrapper.httpx_client.httpx_client.close()

    # -- plumbing -------------------------------------------------------------------------------------

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        renew: bool = True,
    ) -> T:
        try:
            return (retry or self._retry).call(what, fn, _is_transient if idempotent else _never_sent)
        except (ApiError, httpx.HTTPError) as exc:
            # A 401 comes before Label Studio does anything, so asking once more is safe for any call.
            if renew and isinstance(exc, ApiError) and exc.status_code == 401 and self._renew():
                return self._call(what, fn, idempotent=idempotent, retry=retry, renew=False)
            raise self._translate(what, exc) from None

    def _renew(self) -> bool:
        """Drop the SDK's cached access token of a personal access token, so the next request exchanges
        it anew: the SDK renews only once the token has expired on our clock, so a request sent just
        before that, or with a clock behind Label Studio's, gets a 401. False for a legacy token."""
        tokens = getattr(self._sdk._client_wrapper, "_tokens_client", None)
        if tokens is None or getattr(tokens, "_use_legacy_token", True):
            return False
        tokens._access_token = None
        return True

    def _translate(self, what: str, exc: ApiError | httpx.HTTPError) -> LabelStudioError:
        if isinstance(exc, httpx.TimeoutException):
            return LabelStudioUnavailable(f"{what}: Label Studio at {self.url} did not answer in time")
        if isinstance(exc, httpx.HTTPError):
            reason = type(exc).__name__
            return LabelStudioUnavailable(f"{what}: cannot reach Label Studio at {self.url} ({reason})")
        status = exc.status_code or 0
        detail = _short_body(exc.body)
        if status == 401:
            return LabelStudioAuthError(
                f"{what}: Label Studio at {self.url} rejected the API key (HTTP 401); check LABEL_STUDIO_API_KEY",
                detail=detail or None,
            )
        if status == 404:
            return NotFound(f"{what}: not found (HTTP 404)", status=status, detail=detail or None)
        if status == 429 or status >= 500:
            return LabelStudioUnavailable(
                f"{what}: Label Studio answered HTTP {status}", detail=detail or None
            )
        if _not_json(exc):
            kind = (exc.headers or {}).get("content-type", "no content type")
            return LabelStudioUnavailable(
                f"{what}: Label Studio answered HTTP {status} with a body that is not JSON ({kind})",
                detail=detail or None,
            )
        return LabelStudioAPIError(
            f"{what}: Label Studio answered HTTP {status}", status=status, detail=detail
        )

    def _raw(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """One HTTP call through the SDK's own HTTP client (auth included), answered as plain JSON."""
        response = self._sdk._client_wrapper.httpx_client.request(
            path,
            method=method,
            params=dict(params or {}),
            json=body,
            request_options={"max_retries": 0},
        )
        if response.status_code >= 400:
            try:
                payload: Any = response.json()
            except ValueError:
                payload = response.text
            raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=payload)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # as the SDK does for its own calls: the status, with the body as text
            raise ApiError(
                status_code=response.status_code, headers=dict(response.headers), body=response.text
            ) from None

    def _get(
        self,
        what: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        return self._call(what, lambda: self._raw("GET", path, params=params), retry=retry)

    # -- identity -------------------------------------------------------------------------------------

    def whoami(self) -> User:
        """The user the API key belongs to; the cheapest check that URL and key are right."""
        return User.from_api(self._get("check the connection", "api/current-user/whoami"))

    def check_connection(self) -> User:
        """``whoami`` with a short retry budget, so that a wrong URL fails in a few seconds."""
        quick = RetryPolicy(attempts=2, initial_wait=0.25, max_wait=0.5)
        return User.from_api(self._get("check the connection", "api/current-user/whoami", retry=quick))

    def server_time(self) -> datetime | None:
        """Label Studio's clock (the ``Date`` header of a cheap call, whole seconds), or None without one.

        The sync bounds its watermark with it: a task updated while a listing pages may be missed by
        that listing, but never has an ``updated_at`` before the listing started.
        """

        def whoami() -> httpx.Response:
            response = self._sdk._client_wrapper.httpx_client.request(
                "api/current-user/whoami", method="GET", request_options={"max_retries": 0}
            )
            if response.status_code >= 400:
                raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=None)
            return response

        header = self._call("read the server time", whoami).headers.get("date")
        if not header:
            return None
        try:
            return parsedate_to_datetime(header).astimezone(UTC)
        except (TypeError, ValueError):
            return None

    # -- projects -------------------------------------------------------------------------------------

    def get_project(self, project_id: int) -> Project:
        return Project.from_api(self._get(f"get project {project_id}", f"api/projects/{project_id}/"))

    def find_projects(self, title: str) -> list[Project]:
        """Projects whose title is exactly ``title``."""
        found: list[Project] = []
        page = 1
        while True:
            body = self._get(
                f"find project {title!r}", "api/projects/", {"title": title, "page": page, "page_size": 100}
            )
            found.extend(Project.from_api(p) for p in body.get("results", []) if p.get("title") == title)
            if not body.get("next"):
                return found
            page += 1

    def create_project(self, **fields: Any) -> Project:
        created = self._call("create project", lambda: self._sdk.projects.create(**fields), idempotent=False)
        return self.get_project(int(created.id))  # type: ignore[arg-type]

    def update_project(self, project_id: int, **fields: Any) -> Project:
        self._call(f"update project {project_id}", lambda: self._sdk.projects.update(project_id, **fields))
        return self.get_project(project_id)

    def next_task(self, project_id: int) -> Task | None:
        """The task Label Studio's label stream serves next to the calling user (None when none is left)."""
        try:
            raw = self._get(f"next task of project {project_id}", f"api/projects/{project_id}/next")
        except NotFound:
            return None
        return Task.from_api(raw)

    # -- tasks ----------------------------------------------------------------------------------------

    def list_tasks(
        self,
        project_id: int,
        *,
        data: bool = True,
        annotations: bool = True,
        predictions: bool = False,
        prediction_results: bool = True,
        updated_since: datetime | str | None = None,
        annotated: bool | None = None,
        task_ids: Sequence[int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[Task]:
        """The project's tasks in id order, with only the fields asked for.

        Ordered by id so that a task updated while we page can only show up twice, never be skipped
        (``records.unique_tasks`` keeps one copy). ``prediction_results=False`` lists predictions with
        their id and model version only. ``annotated`` keeps the tasks with (True) or without (False) an
        annotation not cancelled; a task whose annotations change while we page, under such a filter,
        can also be missed.
        """
        include = list(_TASK_FIELDS)
        if data:
            include.append("data")
        if annotations:
            include.extend((*_ANNOTATION_FIELDS, "updated_at"))
        if predictions:
            include.extend(_PREDICTION_FIELDS if prediction_results else _PREDICTION_VERSION_FIELDS)
        if task_ids is not None and len(task_ids) > MAX_IDS_PER_QUERY:  # the ids travel in the URL
            for start in range(0, len(task_ids), MAX_IDS_PER_QUERY):
                yield from self.list_tasks(
                    project_id,
                    data=data,
                    annotations=annotations,
                    predictions=predictions,
                    prediction_results=prediction_results,
                    updated_since=updated_since,
                    annotated=annotated,
                    task_ids=task_ids[start : start + MAX_IDS_PER_QUERY],
                    page_size=page_size,
                )
            return
        query = tasks_query(updated_since=updated_since, annotated=annotated)
        if task_ids is not None:
            if not task_ids:
                return
            query["selectedItems"] = {"all": False, "included": list(task_ids)}
        query["ordering"] = ["tasks:id"]
        params: dict[str, Any] = {
            "project": project_id,
            "fields": "all",
            "include": ",".join(dict.fromkeys(include)),
            "page_size": page_size,
            "query": json.dumps(query),
        }
        page = 1
        while True:
            try:
                body = self._get(
                    f"list tasks of project {project_id}", "api/tasks/", {**params, "page": page}
                )
            except NotFound:  # LS answers 404 for a page past the end
                return
            tasks = body.get("tasks", []) if isinstance(body, Mapping) else body
            for raw in tasks:
                yield Task.from_api(raw)
            if len(tasks) < page_size:
                return
            page += 1

    def count_tasks(self, project_id: int, *, updated_since: datetime | str | None = None) -> int:
        query = tasks_query(updated_since=updated_since)
        body = self._get(
            f"count tasks of project {project_id}",
            "api/tasks/",
            {"project": project_id, "include": "id", "page_size": 1, "query": json.dumps(query)},
        )
        return int(body.get("total", 0))

    def get_task(self, task_id: int) -> Task:
        return Task.from_api(self._get(f"get task {task_id}", f"api/tasks/{task_id}/"))

    def update_task(self, task_id: int, **fields: Any) -> None:
        """PATCH plain task fields (``overlap``, ``data``...). Use ``update_task_meta`` for ``meta``."""
        if "meta" in fields:
            raise ValueError("update_task would replace meta; call update_task_meta")
        self._call(f"update task {task_id}", lambda: self._sdk.tasks.update(str(task_id), **fields))

    def update_task_meta(
        self,
        task_id: int,
        values: Mapping[str, Any],
        *,
        current: Mapping[str, Any] | None = None,
        namespace: str = META_NAMESPACE,
    ) -> bool:
        """Merge ``values`` into the task's ``meta[namespace]``; PATCH only if that changes anything.

        ``current`` is the task's meta as just listed; without it the task is read first. Returns
        whether a PATCH was sent.
        """
        if current is None:
            current = self.get_task(task_id).meta
        merged = merge_meta(current, values, namespace)
        if merged == dict(current):
            return False
        self._call(
            f"update meta of task {task_id}", lambda: self._sdk.tasks.update(str(task_id), meta=merged)
        )
        return True

    def update_task_meta_and_data(
        self,
        task: Task,
        values: Mapping[str, Any],
        data_values: Mapping[str, Any],
        *,
        namespace: str = META_NAMESPACE,
    ) -> bool:
        """``update_task_meta`` that also sets ``data_values`` in the task's data, in one PATCH.

        ``task`` is the task as just listed, with its ``data`` (LS's PATCH replaces ``data`` too). Returns
        whether a PATCH was sent (none when neither object changes).
        """
        meta = merge_meta(task.meta, values, namespace)
        data = {**task.data, **data_values}
        if meta == task.meta and data == task.data:
            return False
        self._call(
            f"update meta and data of task {task.id}",
            lambda: self._sdk.tasks.update(str(task.id), meta=meta, data=data),
        )
        return True

    def import_tasks(
        self,
        project_id: int,
        tasks: Sequence[Mapping[str, Any]],
        *,
        chunk_size: int = DEFAULT_IMPORT_CHUNK,
        on_chunk: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Import tasks (LS import format, ``{"data": ..., "meta": ..., "predictions": [...]}``) in chunks.

        Not retried once sent (a retry could import twice): callers that must be idempotent check
        what the project already holds before importing again.
        """
        ids: list[int] = []
        for start in range(0, len(tasks), chunk_size):
            chunk = [dict(t) for t in tasks[start : start + chunk_size]]
            response = self._call(
                f"import {len(chunk)} tasks into project {project_id}",
                lambda chunk=chunk: self._sdk.projects.import_tasks(  # type: ignore[misc]
                    project_id, request=chunk, return_task_ids=True
                ),
                idempotent=False,
            )
            ids.extend(int(i) for i in getattr(response, "task_ids", None) or [])
            if on_chunk is not None:
                on_chunk(len(chunk))
        return ids

    def import_predictions(
        self, project_id: int, predictions: Sequence[Mapping[str, Any]], *, chunk_size: int = 1000
    ) -> int:
        """Bulk-create predictions (``{"task", "result", "score", "model_version"}``); returns the count."""
        created = 0
        for start in range(0, len(predictions), chunk_size):
            chunk = [dict(p) for p in predictions[start : start + chunk_size]]
            self._call(
                f"import {len(chunk)} predictions into project {project_id}",
                lambda chunk=chunk: self._sdk.projects.import_predictions(  # type: ignore[misc]
                    project_id, request=chunk
                ),
                idempotent=False,
            )
            created += len(chunk)
        return created

    def update_prediction(self, prediction_id: int, **fields: Any) -> None:
        """PATCH a prediction: the only way to set ``cluster`` (LS 1.23 drops it on task and bulk imports)."""
        self._call(
            f"update prediction {prediction_id}",
            lambda: self._sdk.predictions.update(prediction_id, **fields),
        )

    def delete_prediction(self, prediction_id: int) -> None:
        self._call(f"delete prediction {prediction_id}", lambda: self._sdk.predictions.delete(prediction_id))

    def retrieve_predictions(self, project_id: int, task_ids: Sequence[int] | None = None) -> None:
        """Run the Data Manager action that asks the project's ML backend for predictions."""
        selected: JSON = (
            {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
        )
        self._call(
            f"retrieve predictions for project {project_id}",
            lambda: self._raw(
                "POST",
                "api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": project_id},
                body={"selectedItems": selected},
            ),
            idempotent=False,
        )

    # -- annotations and users (simulation, tests) ----------------------------------------------------

    def create_annotation(
        self,
        task_id: int,
        result: Sequence[Mapping[str, Any]],
        *,
        completed_by: int | None = None,
        lead_time: float | None = None,
        ground_truth: bool = False,
        was_cancelled: bool = False,
    ) -> Annotation:
        fields: dict[str, Any] = {"result": [dict(r) for r in result], "ground_truth": ground_truth}
        if completed_by is not None:
            fields["completed_by"] = completed_by
        if lead_time is not None:
            fields["lead_time"] = lead_time
        if was_cancelled:
            fields["was_cancelled"] = True
        created = self._call(
            f"annotate task {task_id}",
            lambda: self._sdk.annotations.create(task_id, **fields),
            idempotent=False,
        )
        return Annotation.from_api(created.model_dump(), task_id)

    def delete_annotation(self, annotation_id: int) -> None:
        self._call(f"delete annotation {annotation_id}", lambda: self._sdk.annotations.delete(annotation_id))

    def list_users(self) -> list[User]:
        body = self._get("list users", "api/users/")
        rows = body.get("results", body) if isinstance(body, Mapping) else body
        return [User.from_api(u) for u in rows]

    def create_user(self, email: str, *, password: str, first_name: str = "") -> User:
        created = self._call(
            f"create user {email}",
            lambda: self._sdk.users.create(
                username=email.split("@")[0], email=email, password=password, first_name=first_name
            ),
            idempotent=False,
        )
        return User.from_api(created.model_dump())

    # -- ML backends and webhooks ---------------------------------------------------------------------

    def list_ml_backends(self, project_id: int) -> list[MLBackend]:
        body = self._get(f"list ML backends of project {project_id}", "api/ml/", {"project": project_id})
        return [MLBackend.from_api(b) for b in body]

    def connected_backend(self, project_id: int) -> MLBackend | None:
        """The project's ML backend (the first one LS lists), or None."""
        backends = self.list_ml_backends(project_id)
        return backends[0] if backends else None

    def create_ml_backend(self, project_id: int, url: str, **fields: Any) -> MLBackend:
        created = self._call(
            f"connect ML backend {url}",
            lambda: self._sdk.ml.create(project=project_id, url=url, **fields),
            idempotent=False,
        )
        return MLBackend.from_api({**created.model_dump(), "project": project_id})

    def update_ml_backend(self, backend: MLBackend, **fields: Any) -> MLBackend:
        """PATCH a backend. LS 1.23 answers 500 unless ``url`` and ``project`` are in every PATCH."""
        fields = {"url": backend.url, "project": backend.project_id, **fields}
        updated = self._call(
            f"update ML backend {backend.id}", lambda: self._sdk.ml.update(backend.id, **fields)
        )
        return MLBackend.from_api({"project": backend.project_id, **updated.model_dump()})

    def train(self, backend_id: int) -> None:
        """Ask Label Studio to send START_TRAINING to the backend."""
        self._call(f"train ML backend {backend_id}", lambda: self._sdk.ml.train(backend_id), idempotent=False)

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        body = self._get(f"list webhooks of project {project_id}", "api/webhooks/", {"project": project_id})
        return [Webhook.from_api(w) for w in body]

    def create_webhook(self, project_id: int, url: str, **fields: Any) -> Webhook:
        created = self._call(
            f"create webhook {url}",
            lambda: self._sdk.webhooks.create(project=project_id, url=url, **fields),
            idempotent=False,
        )
        return Webhook.from_api(created.model_dump())

    def update_webhook(self, webhook_id: int, **fields: Any) -> Webhook:
        updated = self._call(
            f"update webhook {webhook_id}", lambda: self._sdk.webhooks.update(webhook_id, **fields)
        )
        return Webhook.from_api({"id": webhook_id, **updated.model_dump()})

    def list_views(self, project_id: int) -> list[JSON]:
        """The project's saved Data Manager tabs (``id``, ``data``: title, filters, ordering)."""
        body = self._get(
            f"list Data Manager tabs of project {project_id}", "api/dm/views/", {"project": project_id}
        )
        return list(body or [])

    def create_view(self, project_id: int, data: JSON) -> JSON:
        """Save a Data Manager tab (``data``: title, filters, ordering) in the project."""
        created: JSON = self._call(
            f"create Data Manager tab in project {project_id}",
            lambda: self._raw("POST", "api/dm/views/", body={"project": project_id, "data": data}),
            idempotent=False,
        )
        return created

    def model_version_counts(self, project_id: int) -> dict[str, int]:
        """How many predictions each model version has in the project (LS adds the project's own at 0)."""
        body = self._get(
            f"list model versions of project {project_id}", f"api/projects/{project_id}/model-versions/"
        )
        return {str(k): int(v) for k, v in body.items()} if isinstance(body, dict) else {}

    def delete_model_version_predictions(self, project_id: int, model_version: str) -> int:
        """Delete every prediction of ``model_version`` in the project; returns how many LS deleted."""
        deleted = self._call(
            f"delete predictions of model version {model_version!r} in project {project_id}",
            lambda: self._raw(
                "DELETE", f"api/projects/{project_id}/model-versions/", body={"model_version": model_version}
            ),
        )
        return int(deleted or 0) if not isinstance(deleted, dict) else int(deleted.get("count", 0))


def _describe(state: Any) -> str:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    status = getattr(exc, "status_code", None)  # the SDK's ApiError, our _TransientAnswer
    if status is not None:
        return f"HTTP {status}"
    return type(exc).__name__ if exc is not None else "unknown"
