"""Task media (images) as model inputs: where a task's value points, fetched with limits and cached on disk.

A task's value may be a Label Studio path (``/data/upload/...``, ``/data/local-files/?d=...``), a cloud
storage URI that Label Studio resolves (``s3://``, ``gs://``, ``azure-blob://``, ... through
``/tasks/<id>/resolve/?fileuri=<base64>``, which redirects to a presigned URL or proxies the object), or a
plain http(s) URL. The Label Studio token goes only to the configured Label Studio origin: redirects are
followed by hand, and a redirect elsewhere (a presigned URL) is fetched without it; a personal access
token is first exchanged for an access token (``LabelStudioAuth``). Downloads have a timeout and a size
limit, and land in a bounded on-disk cache keyed by URL (least recently used files are evicted). A value
that cannot be fetched or decoded raises ``MediaError`` (``MediaUnavailable`` when this one item failed);
``/predict`` turns it into "no prediction for this task" and a logged reason, never a failed batch;
``/score`` leaves a ``MediaUnavailable`` item out and answers 422 for the others.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np
from numpy.typing import NDArray

from ls_companion.files import write_bytes_atomic
from ml_backend.errors import LabelStudioUnreachable, MediaError, MediaUnavailable
from ml_backend.plugin import ControlSpec
from ml_backend.settings import BackendSettings

log = logging.getLogger(__name__)

ImageArray = NDArray[np.uint8]
_MAX_REDIRECTS = 5
#: Decoded images above this many pixels are refused (a decompression bomb, not a photo).
MAX_PIXELS = 80_000_000


#: An access token is renewed this long before it expires, so that none runs out during a request.
ACCESS_TOKEN_LEEWAY = 30.0


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature (Label Studio checks it); {} for a
    token that is no JWT, such as a legacy one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class LabelStudioAuth:
    """The ``Authorization`` header for Label Studio. A legacy token goes as ``Token <key>``. A personal
    access token (a JWT refresh token, as Label Studio 1.23 hands out) is not accepted as such on any
    URL: it is exchanged at ``/api/token/refresh/`` for an access token sent as ``Bearer`` (measured on
    1.23.2: ``Token <PAT>`` and ``Bearer <PAT>`` get 401 on /data/upload too), renewed
    ``ACCESS_TOKEN_LEEWAY`` before its lifetime (``exp - iat``, 5 minutes there, counted on our clock)
    runs out. The SDK's own exchange lives inside its API client, which the serving path does not load.
    A refused token is a ``MediaError``; Label Studio not answering is ``LabelStudioUnreachable`` (503)
    unless the access token in hand is still valid."""

    def __init__(self, base: str, token: str, http: httpx.Client) -> None:
        self.base, self.token, self.http = base, token, http
        self.personal = jwt_claims(token).get("token_type") == "refresh"
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires = 0.0  # on time.monotonic()

    def header(self) -> dict[str, str]:
        if not self.personal:
            return {"Authorization": f"Token {self.token}"}
        with self._lock:  # request threads share one fetcher
            now = time.monotonic()
            if self._access is None or now >= self._expires - ACCESS_TOKEN_LEEWAY:
                try:
                    self._access, lifetime = self._refresh()
                    self._expires = now + lifetime
                except LabelStudioUnreachable:
                    if self._access is None or now >= self._expires:
                        raise
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> tuple[str, float]:
        """A new access token and its lifetime in seconds."""
        url = urljoin(self.base, "api/token/refresh/")
        try:
            response = self.http.post(url, json={"refresh": self.token})
        except httpx.HTTPError as exc:
            raise LabelStudioUnreachable(
                f"exchange the personal access token at {url}: {type(exc).__name__}"
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise LabelStudioUnreachable(f"exchange the personal access token: HTTP {response.status_code}")
        try:
            access = response.json().get("access") if response.status_code == 200 else None
        except ValueError:
            access = None
        if not isinstance(access, str):
            raise MediaError(f"Label Studio refused the personal access token (HTTP {response.status_code})")
        claims = jwt_claims(access)
        exp, iat = claims.get("exp"), claims.get("iat")
        if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
            return access, float(exp - iat)
        return access, 60.0  # no usable lifetime: renew soon


class MediaFetcher:
    """Fetches task media for one Label Studio (``label_studio_url`` and ``token`` may be None)."""

    def __init__(self, settings: BackendSettings, label_studio_url: str | None, token: str | None) -> None:
        self.base = label_studio_url.rstrip("/") + "/" if label_studio_url else None
        self.max_bytes = settings.media_max_bytes
        self.cache_bytes = settings.media_cache_bytes
        self.cache_dir = settings.media_cache_dir or settings.model_dir / "media-cache"
        self.http = httpx.Client(timeout=settings.media_timeout, follow_redirects=False)
        self.auth = LabelStudioAuth(self.base, token, self.http) if self.base and token else None

    def close(self) -> None:
        self.http.close()

    def url(self, value: str, task_id: int | None) -> str:
        """The absolute URL of a task's value."""
        scheme = urlsplit(value).scheme.lower()
        if scheme in ("http", "https"):
            return value
        if self.base is None:
            raise MediaError(f"{_short(value)} is served by Label Studio, but its URL is unknown")
        if not scheme and value.startswith("/"):
            return urljoin(self.base, value.lstrip("/"))
        if scheme and task_id is not None:
            encoded = base64.urlsafe_b64encode(value.encode()).decode()
            return urljoin(self.base, f"tasks/{task_id}/resolve/?fileuri={encoded}")
        raise MediaError(f"{_short(value)} is not a URL, a Label Studio path or a storage URI")

    def fetch(self, value: str, task_id: int | None = None) -> bytes:
        url = self.url(value, task_id)
        cached = self.cache_dir / hashlib.sha256(url.encode()).hexdigest()
        try:
            data = cached.read_bytes()
            os.utime(cached)  # recently used: evicted last
            return data
        except OSError:
            pass
        data = self._download(url)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cached, data, sync_folder=False)
        self._evict()
        return data

    def image(self, value: str, task_id: int | None = None) -> ImageArray:
        return decode_image(self.fetch(value, task_id), _short(value))

    def _download(self, url: str) -> bytes:
        for _ in range(_MAX_REDIRECTS + 1):
            headers = self.auth.header() if self.auth is not None and self._is_ours(url) else {}
            try:
                with self.http.stream("GET", url, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code in (401, 403) and headers:  # the token, not this file
                        raise MediaError(
                            f"Label Studio refused the token for {_short(url)}: HTTP {response.status_code}"
                        )
                    if response.status_code != 200:
                        raise MediaUnavailable(f"{_short(url)}: HTTP {response.status_code}")
                    return self._read_limited(response, url)
            except httpx.HTTPError as exc:
                raise MediaUnavailable(f"{_short(url)}: {type(exc).__name__} {exc}".strip()) from None
        raise MediaUnavailable(f"{_short(url)}: more than {_MAX_REDIRECTS} redirects")

    def _read_limited(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        too_big = MediaUnavailable(f"{_short(url)}: larger than MEDIA_MAX_BYTES ({self.max_bytes} bytes)")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    def _is_ours(self, url: str) -> bool:
        if self.base is None:
            return False
        mine, theirs = urlsplit(self.base), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme.lower(), theirs.netloc.lower())

    def _evict(self) -> None:
        """Delete least recently used files until the cache fits MEDIA_CACHE_BYTES."""
        files = []
        for entry in os.scandir(self.cache_dir):
            if entry.is_file() and not entry.name.startswith("."):
                stat = entry.stat()
                files.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


def decode_image(data: bytes, name: str = "image") -> ImageArray:
    """RGB ``uint8`` (h, w, 3) as the annotator sees it (EXIF orientation applied)."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise MediaError("images need Pillow: install ls-companion[images]") from None
    import io

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise MediaUnavailable(f"{name}: {image.width}x{image.height} pixels is too large")
            rgb = ImageOps.exif_transpose(image).convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except MediaError:
        raise
    except Exception as exc:  # Pillow raises many types for a corrupt or unknown file
        raise MediaUnavailable(f"{name}: cannot decode the image ({type(exc).__name__})") from None


def read_input(spec: ControlSpec, task: Mapping[str, Any], media: MediaFetcher | None) -> Any | None:
    """The model input of ``task`` for ``spec``: its text, its decoded image, or None when it has no
    usable value; raises ``MediaError`` when the image cannot be had (``MediaUnavailable``: this one)."""
    data = task.get("data")
    value = data.get(spec.value_key) if isinstance(data, Mapping) else None
    if spec.object_tag != "Image" or not isinstance(value, str) or not value:
        return value if spec.object_tag == "Text" and isinstance(value, str) else None
    if media is None:
        raise MediaError("no media fetcher")
    task_id = task.get("id")
    return media.image(value, task_id if isinstance(task_id, int) else None)


def read_inputs(
    spec: ControlSpec, tasks: Sequence[Mapping[str, Any]], media: MediaFetcher | None
) -> list[Any | None]:
    """The model input of each task for ``spec`` (None: no usable input; media failures are logged)."""
    inputs: list[Any | None] = []
    for task in tasks:
        try:
            inputs.append(read_input(spec, task, media))
        except MediaError as exc:
            log.warning("task %s: no prediction for %s: %s", task.get("id"), spec.name, exc.detail)
            inputs.append(None)
    return inputs


def _short(value: str, limit: int = 120) -> str:
    """A URL for a log line: without its query (presigned signatures, tokens), cut to ``limit``."""
    parts = urlsplit(value)
    shown = value if not parts.query or parts.path.endswith("/resolve/") else value.split("?", 1)[0] + "?..."
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
