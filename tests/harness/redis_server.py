"""A private redis-server on a free port, so test runs never collide with each other or with 6379."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ls_companion.localserver import LocalServerError, free_port


@dataclass
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_redis(workdir: Path, *, port: int | None = None, timeout: float = 15.0) -> RedisProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise LocalServerError(
            "redis-server is not on PATH: install the Debian package redis-server (.ci/run does)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = RedisProcess(port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"redis-server exited with code {process.returncode}; see {workdir}/redis.log"
            )
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                return server
        except redis.RedisError:
            time.sleep(0.1)
    server.stop()
    raise LocalServerError(f"redis-server on port {port} did not answer within {timeout:.0f} s")
