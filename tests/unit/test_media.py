"""Task media: URLs of every kind, the token only for Label Studio's origin, limits, the on-disk cache.

Two throw-away local HTTP servers stand in for "Label Studio" and "a storage host" (plain http.server:
what is tested is our fetcher's behaviour on the wire, headers included).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ml_backend.errors import LabelStudioUnreachable, MediaError, MediaUnavailable
from ml_backend.media import LabelStudioAuth, MediaFetcher, decode_image, jwt_claims, read_inputs
from ml_backend.plugin import ControlSpec
from ml_backend.settings import BackendSettings
from tests.harness.images import digit_png

PNG = digit_png(7, 0)


class Host:
    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization header)
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.seen.append((self.path, self.headers.get("Authorization")))
                status, headers, body = host.routes.get(self.path, (404, {}, b"missing"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    storage = Host({"/bucket/cat.png?sig=abc": (200, {}, PNG), "/big.png": (200, {}, b"x" * 5000)})
    encoded = base64.urlsafe_b64encode(b"s3://bucket/cat.png").decode()
    ls = Host(
        {
            "/data/upload/3/cat.png": (200, {}, PNG),
            f"/tasks/9/resolve/?fileuri={encoded}": (
                302,
                {"Location": f"{storage.url}/bucket/cat.png?sig=abc"},
                b"",
            ),
            "/data/local-files/?d=images/cat.png": (200, {}, PNG),
        }
    )
    yield ls, storage
    ls.server.shutdown()
    storage.server.shutdown()


def fetcher(tmp_path: Path, ls: Host, **settings: Any) -> MediaFetcher:
    return MediaFetcher(BackendSettings(model_dir=tmp_path, **settings), ls.url, "secret-token")


def test_every_kind_of_reference_and_the_token_only_for_label_studio(
    tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    ls, storage = hosts
    media = fetcher(tmp_path, ls)
    assert media.fetch("/data/upload/3/cat.png") == PNG
    assert media.fetch("/data/local-files/?d=images/cat.png") == PNG
    assert media.fetch("s3://bucket/cat.png", task_id=9) == PNG  # LS's resolve endpoint, then a presigned URL
    assert media.fetch("s3://bucket/cat.png", task_id=9) == PNG  # cached by URL: not fetched again
    assert all(auth == "Token secret-token" for _, auth in ls.seen) and len(ls.seen) == 3
    assert storage.seen == [("/bucket/cat.png?sig=abc", None)]  # the presigned host never saw the token
    image = media.image("/data/upload/3/cat.png")
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    with pytest.raises(MediaError, match="storage URI"):
        media.url("cat.png", None)


def test_failures_are_media_errors_with_a_reason(tmp_path: Path, hosts: tuple[Host, Host]) -> None:
    ls, storage = hosts
    ls.routes["/data/upload/3/secret.png"] = (401, {}, b'{"detail": "Invalid token."}')
    storage.routes["/private.png"] = (403, {}, b"denied")
    media = fetcher(tmp_path, ls, media_max_bytes=4096)
    # This one item's media failed: MediaUnavailable (/score leaves the item out).
    with pytest.raises(MediaUnavailable, match="HTTP 404"):
        media.fetch("/data/upload/3/missing.png")
    with pytest.raises(MediaUnavailable, match="larger than MEDIA_MAX_BYTES"):
        media.fetch(f"{storage.url}/big.png")
    with pytest.raises(MediaUnavailable, match="ConnectError"):
        media.fetch("http://127.0.0.1:9/x.png")
    with pytest.raises(MediaUnavailable, match="cannot decode the image"):
        decode_image(b"\x89PNG broken", "broken.png")
    with pytest.raises(MediaUnavailable, match="HTTP 403"):  # a storage host's refusal is the file's
        media.fetch(f"{storage.url}/private.png")
    # Not the item's fault: Label Studio refusing our token, no Label Studio URL (/score: 422).
    unknown = MediaFetcher(BackendSettings(model_dir=tmp_path), None, None)
    for where, value in ((media, "/data/upload/3/secret.png"), (unknown, "/data/upload/1/a.png")):
        with pytest.raises(MediaError, match=r"refused the token|URL is unknown") as caught:
            where.fetch(value)
        assert not isinstance(caught.value, MediaUnavailable)


def test_cache_is_bounded_least_recently_used_first(tmp_path: Path, hosts: tuple[Host, Host]) -> None:
    ls, storage = hosts
    storage.routes.update({f"/{k}.png": (200, {}, bytes([k]) * 1000) for k in range(4)})
    media = fetcher(tmp_path, ls, media_cache_bytes=2500, media_cache_dir=tmp_path / "cache")
    for k in range(4):
        media.fetch(f"{storage.url}/{k}.png")
    assert len(list((tmp_path / "cache").iterdir())) == 2  # 2,000 bytes fit; the two oldest went
    assert media.fetch(f"{storage.url}/3.png") == bytes([3]) * 1000
    assert len(storage.seen) == 4  # the newest came from the cache


def test_read_inputs_skips_tasks_without_usable_media(
    tmp_path: Path, hosts: tuple[Host, Host], caplog: pytest.LogCaptureFixture
) -> None:
    ls, _ = hosts
    spec = ControlSpec(
        "label", "Choices", "single", "image", "image", ("a", "b"), "image-classifier", "Image"
    )
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/3/cat.png"}},
        {"id": 2, "data": {"image": "/data/upload/3/missing.png"}},
        {"id": 3, "data": {}},
    ]
    inputs = read_inputs(spec, tasks, fetcher(tmp_path, ls))
    assert inputs[0] is not None and inputs[0].shape == (32, 32, 3) and inputs[1:] == [None, None]
    assert "task 2: no prediction for label: " in caplog.text and "HTTP 404" in caplog.text


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


def test_a_personal_access_token_is_exchanged_renewed_and_its_failures_told_apart() -> None:
    """Label Studio's /api/token/refresh/ stood in by a transport: the access token's lifetime is
    exp - iat on our clock; Label Studio not answering is a 503 unless the token in hand still holds;
    a refused token is a MediaError; a legacy token goes as it is."""
    pat = _jwt({"token_type": "refresh", "exp": 9_999_999_999})
    answers: list[httpx.Response] = []
    sent: list[str] = []

    def refresh(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        assert json.loads(request.content) == {"refresh": pat}
        return answers.pop(0)

    access = _jwt({"token_type": "access", "iat": 100, "exp": 400})
    http = httpx.Client(transport=httpx.MockTransport(refresh))
    auth = LabelStudioAuth("http://ls.example/sub/", pat, http)
    answers.append(httpx.Response(200, json={"access": access}))
    assert auth.header() == {"Authorization": f"Bearer {access}"}
    assert sent == ["http://ls.example/sub/api/token/refresh/"]
    assert auth._expires - time.monotonic() == pytest.approx(300, abs=5)
    assert auth.header() == {"Authorization": f"Bearer {access}"} and len(sent) == 1  # cached

    auth._expires = time.monotonic() + 10  # inside the leeway, still valid: a failed renewal keeps it
    answers.append(httpx.Response(502))
    assert auth.header() == {"Authorization": f"Bearer {access}"}
    auth._expires = time.monotonic() - 1  # expired: the failure is the request's
    answers.append(httpx.Response(503))
    with pytest.raises(LabelStudioUnreachable, match="HTTP 503"):
        auth.header()
    answers.append(httpx.Response(401, json={"detail": "Token is blacklisted"}))
    with pytest.raises(MediaError, match=r"refused the personal access token \(HTTP 401\)"):
        auth.header()
    assert LabelStudioAuth("http://ls.example/", "0123abcd", http).header() == {
        "Authorization": "Token 0123abcd"
    }
    assert jwt_claims("not.a.jwt") == {} and jwt_claims("0123abcd") == {}
