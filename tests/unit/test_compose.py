"""docker-compose.yml, Dockerfile, .dockerignore and .env.example, checked without Docker.

Docker cannot run here, so the deployment files are read as data: every command, option, entry point,
environment variable, URL, volume and file they name must exist in the project, and the services must
agree with each other (one token, one set of backend credentials, shared model and data volumes).
The checker is ``tests.harness.compose_check.Deployment``; the last tests feed it broken variants to show it rejects them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.compose_check import (
    LS_NETWORK_SWITCHES,
    ROOT,
    Deployment,
    ignored,
    image_repository,
    interpolate,
    interpolation_names,
)


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment.load(ROOT)


def _none(problems: list[str]) -> None:
    assert not problems, "\n" + "\n".join(problems)


def test_images_are_pinned_or_built_here(deployment: Deployment) -> None:
    _none(deployment.image_problems())


def test_commands_options_entry_points_and_health_checks_exist(deployment: Deployment) -> None:
    _none(deployment.command_problems())


def test_each_image_installs_the_extra_its_program_needs(deployment: Deployment) -> None:
    _none(deployment.extras_problems())


def test_every_variable_is_read_by_the_settings_of_the_program(deployment: Deployment) -> None:
    _none(deployment.environment_problems())


def test_services_agree_on_token_credentials_urls_and_volumes(deployment: Deployment) -> None:
    _none(deployment.agreement_problems())


def test_dependencies_health_checks_and_volumes(deployment: Deployment) -> None:
    _none(deployment.dependency_problems())


def test_label_studio_is_pinned_and_accepts_service_names(deployment: Deployment) -> None:
    _none(deployment.label_studio_problems())


def test_mounted_files_and_specs_exist_and_parse(deployment: Deployment) -> None:
    _none(deployment.file_problems())


def test_dockerfile_copies_what_exists(deployment: Deployment) -> None:
    _none(deployment.dockerfile_problems())


def test_env_example_defines_exactly_what_compose_interpolates(deployment: Deployment) -> None:
    _none(deployment.env_example_problems_all())


def _runs(argv: list[str]) -> str:
    """A command's program and first positional word: `ls-companion --verbose worker` -> `ls-companion worker`."""
    words = [word for word in argv[1:] if not word.startswith("-")]
    return f"{argv[0]} {words[0]}" if words else argv[0]


def test_the_stack_has_the_services_of_the_issue(deployment: Deployment) -> None:
    runs = {_runs(deployment.argv(name) or []) for name in deployment.commands()}
    wanted = {
        "gunicorn ml_backend.wsgi:app",
        "ml-backend worker",
        "ls-companion worker",
        "ls-companion schedule",
    }
    assert wanted <= runs, f"missing: {sorted(wanted - runs)}"
    redis = [
        n for n, s in deployment.services.items() if image_repository(str(s.get("image", ""))) == "redis"
    ]
    assert len(redis) == 1


def test_label_studio_reads_the_names_we_set() -> None:
    """Label Studio 1.23.2's own source (in .venv-ls) reads the variables the compose file sets."""
    found = sorted((ROOT / ".venv-ls").glob("lib/python3*/site-packages/label_studio"))
    if not found:
        pytest.skip("no Label Studio in .venv-ls (make install-ls)")
    package = found[0]
    assert (package.parent / "label_studio-1.23.2.dist-info").is_dir()
    params = (package / "core/utils/params.py").read_text(encoding="utf-8")
    assert "for env_key in ['LABEL_STUDIO_' + name, 'HEARTEX_' + name, name]:" in params
    assert "['false', 'no', 'not', 'off', '0']" in params
    base = (package / "core/settings/base.py").read_text(encoding="utf-8")
    for switch in LS_NETWORK_SWITCHES:
        assert f"{switch} = get_bool_env('{switch}', True)" in base
    assert "get_bool_env('LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN', False)" in base
    assert "get_bool_env('COLLECT_ANALYTICS'" in base
    server = (package / "server.py").read_text(encoding="utf-8")
    for setting in ("USERNAME", "PASSWORD", "USER_TOKEN"):
        assert f"get_env('{setting}')" in server


# -- the checker rejects what it should --------------------------------------------------------------------


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _set_env(name: str, key: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        service = _service(compose, name)
        service["environment"] = {**service["environment"], key: value}

    return change


def _set(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        _service(compose, name)[key] = value

    return change


def _drop_env(name: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        service = _service(compose, name)
        service["environment"] = {k: v for k, v in service["environment"].items() if k != key}

    return change


def _ls_switch(names: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    """Replace LABEL_STUDIO_ML_BLOCK_LOCAL_IP by ``names``."""

    def change(compose: dict[str, Any]) -> None:
        service = _service(compose, "label-studio")
        kept = {k: v for k, v in service["environment"].items() if k != "LABEL_STUDIO_ML_BLOCK_LOCAL_IP"}
        service["environment"] = {**kept, **names}

    return change


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("bogus subcommand", _set("worker", "command", ["ls-companion", "wroker"]), "has no subcommand 'wroker'"),
    (
        "bogus option",
        _set("worker", "command", ["ls-companion", "worker", "--bogus"]),
        "No such option: --bogus",
    ),
    (
        "bogus root option",
        _set("worker", "command", ["ls-companion", "--loud", "worker"]),
        "No such option: --loud",
    ),
    (
        "bad option value",
        _set("worker", "command", ["ls-companion", "worker", "--monitor-interval", "x"]),
        "Invalid value for '--monitor-interval'",
    ),
    ("backend subcommand", _set("ml-worker", "command", ["ml-backend", "work"]), "has no subcommand 'work'"),
    ("unknown program", _set("worker", "command", ["rqworker"]), "unknown program 'rqworker'"),
    ("shell", _set("worker", "command", ["sh", "-c", "ls-companion worker"]), "not a shell"),
    (
        "missing wsgi attr",
        _set("ml-backend", "command", ["gunicorn", "--bind=0.0.0.0:9090", "ml_backend.wsgi:application"]),
        "has no top-level 'application'",
    ),
    (
        "missing wsgi module",
        _set("ml-backend", "command", ["gunicorn", "--bind=0.0.0.0:9090", "ml_backend.wsgy:app"]),
        "no module 'ml_backend.wsgy'",
    ),
    (
        "bogus gunicorn flag",
        _set(
            "ml-backend", "command", ["gunicorn", "--bind=0.0.0.0:9090", "--wrokers=2", "ml_backend.wsgi:app"]
        ),
        "gunicorn: error: unrecognized arguments: --wrokers=2",
    ),
    (
        "port mismatch",
        _set("ml-backend", "command", ["gunicorn", "--bind=0.0.0.0:9000", "ml_backend.wsgi:app"]),
        "listens on [9000], not 9090",
    ),
    (
        "unread variable",
        _set_env("worker", "LABEL_STUDIO_TOKEN", "x"),
        "LABEL_STUDIO_TOKEN: not read by ls_companion.settings:Settings",
    ),
    (
        "backend variable on the companion",
        _set_env("worker", "MODEL_DIR", "/models"),
        "MODEL_DIR: not read by",
    ),
    ("host pass-through", _set_env("worker", "LOG_LEVEL", None), "no value"),
    (
        "invalid value",
        _set_env("worker", "RETRY_ATTEMPTS", "many"),
        "RETRY_ATTEMPTS: Input should be a valid integer",
    ),
    (
        "undefined interpolation",
        _set_env("worker", "LOG_LEVEL", "${NOT_IN_ENV_EXAMPLE}"),
        "${NOT_IN_ENV_EXAMPLE}, which .env.example does not define",
    ),
    (
        "token mismatch",
        _set_env("worker", "LABEL_STUDIO_API_KEY", "another-token"),
        "differs from services.label-studio's LABEL_STUDIO_USER_TOKEN",
    ),
    ("secret mismatch", _set_env("ml-backend", "WEBHOOK_SECRET", "other"), "set to different values"),
    ("url to no service", _set_env("worker", "ML_BACKEND_URL", "http://backend:9090"), "names no service"),
    (
        "url without depends_on",
        _set_env("scheduler", "REDIS_URL", "redis://ml-worker:6379/0"),
        "missing from its depends_on",
    ),
    ("models not a volume", _set("ml-worker", "volumes", []), "MODEL_DIR=/models is not a named volume"),
    ("latest", _set("redis", "image", "redis:latest"), "is not pinned"),
    ("untagged", _set("redis", "image", "redis"), "is not pinned"),
    (
        "wrong LS",
        _set("label-studio", "image", "heartexlabs/label-studio:1.22.0"),
        "want 'heartexlabs/label-studio:1.23.2'",
    ),
    (
        "LS dev server",
        _set("label-studio", "command", ["label-studio", "start"]),
        "want ['label-studio-uwsgi'] (the image's production server)",
    ),
    ("LS on SQLite", _drop_env("label-studio", "DJANGO_DB"), "DJANGO_DB is None"),
    (
        "LS on no database service",
        _set_env("label-studio", "POSTGRE_HOST", "redis"),
        "POSTGRE_HOST: 'redis' is not a postgres service",
    ),
    (
        "database password mismatch",
        _set_env("label-studio", "POSTGRE_PASSWORD", "other"),
        "POSTGRE_PASSWORD: 'other', but services.postgres has",
    ),
    (
        "database name mismatch",
        _set_env("label-studio", "POSTGRE_NAME", "postgres"),
        "POSTGRE_NAME: 'postgres', but services.postgres has 'labelstudio'",
    ),
    (
        "database not a volume",
        _set("postgres", "volumes", []),
        "/var/lib/postgresql/data must be a named volume",
    ),
    (
        "database not awaited",
        _set("label-studio", "depends_on", {"postgres": {"condition": "service_started"}}),
        "depends_on.postgres: must wait for service_healthy",
    ),
    ("database without health check", _set("postgres", "healthcheck", {"disable": True}), "not `pg_isready`"),
    (
        "SSRF on",
        _set_env("label-studio", "LABEL_STUDIO_SSRF_PROTECTION_ENABLED", "true"),
        "SSRF_PROTECTION_ENABLED is 'true'",
    ),
    (
        "HEARTEX_ before the bare name",
        _ls_switch({"HEARTEX_ML_BLOCK_LOCAL_IP": "true", "ML_BLOCK_LOCAL_IP": "false"}),
        "ML_BLOCK_LOCAL_IP is 'true' (from HEARTEX_ML_BLOCK_LOCAL_IP)",
    ),
    (
        "switch missing",
        _drop_env("label-studio", "LABEL_STUDIO_ML_BLOCK_LOCAL_IP"),
        "ML_BLOCK_LOCAL_IP is None",
    ),
    (
        "missing spec",
        _set("scheduler", "command", ["ls-companion", "schedule", "/specs/nope.yaml"]),
        "examples/nope.yaml does not exist",
    ),
    (
        "unmounted spec",
        _set("scheduler", "command", ["ls-companion", "schedule", "/elsewhere/a.yaml"]),
        "neither mounted nor copied",
    ),
    (
        "missing mount source",
        _set("worker", "volumes", ["./no-such-folder:/specs:ro"]),
        "'./no-such-folder' does not exist",
    ),
    ("no condition", _set("worker", "depends_on", ["redis"]), "a list has no conditions"),
    ("healthy without check", _set("ml-backend", "healthcheck", {"disable": True}), "has no health check"),
    (
        "backend with crowd-kit",
        _set("ml-backend", "build", {"context": ".", "args": {"EXTRAS": "ml-backend,companion"}}),
        "installs crowd-kit",
    ),
    (
        "companion without its extra",
        _set("worker", "build", {"context": ".", "args": {"EXTRAS": "ml-backend"}}),
        "lacks 'companion'",
    ),
    (
        "unknown extra",
        _set("worker", "build", {"context": ".", "args": {"EXTRAS": "companion,gpu"}}),
        "no extra 'gpu'",
    ),
    (
        "missing Dockerfile",
        _set("worker", "build", {"context": ".", "dockerfile": "Dockerfile.worker"}),
        "no Dockerfile 'Dockerfile.worker'",
    ),
    (
        "health check does not compile",
        _set("ml-backend", "healthcheck", {"test": ["CMD", "python", "-c", "import urllib.request;("]}),
        "the -c code does not compile",
    ),
    (
        "health check path",
        _set(
            "ml-backend",
            "healthcheck",
            {
                "test": [
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request as u; u.urlopen('http://127.0.0.1:9090/up')",
                ]
            },
        ),
        "asks '/up', not /health",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in BROKEN], ids=[i for i, _, _ in BROKEN]
)
def test_the_checker_rejects_a_broken_compose_file(
    deployment: Deployment, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    compose = copy.deepcopy(deployment.compose)
    mutate(compose)
    problems = dataclasses.replace(deployment, compose=compose).problems()
    assert any(expected in problem for problem in problems), f"{expected!r} not in:\n" + "\n".join(problems)


def test_the_checker_rejects_a_broken_dockerfile_and_env_example(deployment: Deployment) -> None:
    dockerfile = deployment.dockerfiles["Dockerfile"]
    dockerfile = dockerfile.replace(
        "COPY label_configs /app/label_configs", "COPY label_config /app/label_configs"
    )
    dockerfile = dockerfile.replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 \\\n    MODELDIR=/models")
    dockerfile = dockerfile.replace("COPY ml_backend ./ml_backend", "")
    env = {k: v for k, v in deployment.env_example.items() if k != "ML_BACKEND_WEBHOOK_SECRET"}
    env["UNUSED_SECRET"] = "x"
    broken = dataclasses.replace(deployment, dockerfiles={"Dockerfile": dockerfile}, env_example=env)
    problems = broken.dockerfile_problems() + broken.env_example_problems_all()
    for expected in (
        "COPY source 'label_config' does not exist",
        "ENV MODELDIR is read by none of our settings",
        "pip install needs 'ml_backend', which no COPY brings in",
        "interpolates ${ML_BACKEND_WEBHOOK_SECRET}, which .env.example does not define",
        ".env.example defines UNUSED_SECRET, which docker-compose.yml never uses",
    ):
        assert any(expected in problem for problem in problems), f"{expected!r} not in:\n" + "\n".join(
            problems
        )
    ignoring = dataclasses.replace(deployment, dockerignore=[*deployment.dockerignore, "label_*"])
    assert any("excluded by .dockerignore" in p for p in ignoring.dockerfile_problems())


@pytest.mark.parametrize(
    "names",
    [
        {"ML_BLOCK_LOCAL_IP": "false"},
        {"HEARTEX_ML_BLOCK_LOCAL_IP": "off"},
        {"LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "0"},
    ],
)
def test_any_name_label_studio_reads_turns_the_switch_off(
    deployment: Deployment, names: dict[str, str]
) -> None:
    compose = copy.deepcopy(deployment.compose)
    _ls_switch(names)(compose)
    _none(dataclasses.replace(deployment, compose=compose).label_studio_problems())


def test_the_checker_reads_specs_as_the_service_would(deployment: Deployment, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "title: One\nlabel_config: sentiment\noverlap: {maximum_annotations: 0}\n", encoding="utf-8"
    )
    assert deployment.spec_problems("scheduler", spec) == [
        f"{spec}: overlap.maximum_annotations: Input should be greater than or equal to 1"
    ]
    spec.write_text("title: Two\nlabel_config: nope\npilot: {file: gone.csv}\n", encoding="utf-8")
    problems = deployment.spec_problems("scheduler", spec)
    assert any(
        "label_config: no file 'nope'" in p and "LABEL_CONFIGS_DIR=/app/label_configs" in p for p in problems
    )
    assert "gone.csv: no such file next to the spec" in problems


def test_interpolation_follows_compose() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert (
        interpolate("$A ${A} $$A ${B:-d} ${EMPTY:-d} ${EMPTY-d} ${A:+x} ${B+x} ${A:?e}", env)
        == "1 1 $A d d  x  1"
    )
    assert interpolation_names("${A:?set A} $B $$C ${D-x}") == {"A", "B", "D"}
    assert ignored("ls_companion/x.py", ["**/__pycache__"]) is False
    assert ignored("ls_companion/__pycache__/x.pyc", ["**/__pycache__"]) is True
    assert ignored("examples/a.csv", ["examples", "!examples/a.csv"]) is False
