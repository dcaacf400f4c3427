"""Task media: URLs of every kind, the token only for Label Studio's origin, limits, the on-disk cache.

Two throw-away local HTTP servers stand in for "Label Studio" and "a storage host" (plain http.server:
what is tested is our fetcher's behaviour on the wire, headers included).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_backend.errors import MediaError
from ml_backend.media import MediaFetcher, decode_image, read_inputs
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
    media = fetcher(tmp_path, ls, media_max_bytes=4096)
    with pytest.raises(MediaError, match="HTTP 404"):
        media.fetch("/data/upload/3/missing.png")
    with pytest.raises(MediaError, match="larger than MEDIA_MAX_BYTES"):
        media.fetch(f"{storage.url}/big.png")
    with pytest.raises(MediaError, match="ConnectError"):
        media.fetch("http://127.0.0.1:9/x.png")
    with pytest.raises(MediaError, match="cannot decode the image"):
        decode_image(b"\x89PNG broken", "broken.png")
    with pytest.raises(MediaError, match="URL is unknown"):
        MediaFetcher(BackendSettings(model_dir=tmp_path), None, None).fetch("/data/upload/1/a.png")


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
