"""The deployment checker behind tests/unit/test_compose.py: docker-compose.yml, Dockerfile,
.dockerignore and .env.example read as data (Docker cannot run here). See the test module for what it checks."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock

import typer
import typer.main
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]

LS_IMAGE = "heartexlabs/label-studio:1.23.2"
#: Label Studio's ``core.utils.params.get_env`` tries these prefixes in this order; the first set wins.
LS_ENV_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "")
#: Label Studio's switches that must be off so that it accepts http://ml-backend:9090 (a private address).
LS_NETWORK_SWITCHES = ("ML_BLOCK_LOCAL_IP", "SSRF_PROTECTION_ENABLED")
#: ``core.utils.params.cast_bool_from_str``.
LS_FALSE = {"false", "no", "not", "off", "0"}
LS_TRUE = {"true", "yes", "on", "1"}
LS_DATA_DIR = "/label-studio/data"
#: How Label Studio's image serves production (its entrypoint: wait for the database, migrate,
#: ``label-studio init``, then uWSGI on 8080).
LS_PRODUCTION_COMMAND = ["label-studio-uwsgi"]
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"

#: Ports the images we do not build listen on (inside the compose network).
IMAGE_PORTS = {"heartexlabs/label-studio": 8080, "redis": 6379, "postgres": 5432}
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379}


@dataclass(frozen=True)
class Package:
    """One of our packages: the settings class its processes read the environment with, and the
    pyproject extra an image that runs it must install."""

    settings: str
    extra: str
    forbidden_requirements: frozenset[str] = frozenset()


PACKAGES = {
    "ls_companion": Package("ls_companion.settings:Settings", "companion"),
    # docs/ml-backend.md: the backend is kept free of crowd-kit (and its transformers/pyarrow).
    "ml_backend": Package("ml_backend.settings:BackendSettings", "ml-backend", frozenset({"crowd-kit"})),
}

#: Variables our images or services may set that no settings class of ours reads, and who reads them.
OTHER_PROGRAMS_ENV = {
    "PATH": "the shell and exec: the image's virtualenv /opt/venv/bin comes first (Dockerfile)",
    "PYTHONUNBUFFERED": "the Python interpreter: logs reach `docker compose logs` at once (Dockerfile)",
    "PYTHONDONTWRITEBYTECODE": "the Python interpreter: no .pyc files written in the image (Dockerfile)",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, in the build stage (Dockerfile)",
    "PIP_NO_CACHE_DIR": "pip, in the build stage: no wheel cache left in the layer (Dockerfile)",
}

#: Variables of the two packages whose values must be the same wherever they are set.
SHARED_VALUES = [
    {("ml_backend", "BASIC_AUTH_USER"), ("ls_companion", "ML_BACKEND_BASIC_AUTH_USER")},
    {("ml_backend", "BASIC_AUTH_PASS"), ("ls_companion", "ML_BACKEND_BASIC_AUTH_PASS")},
    {("ml_backend", "WEBHOOK_SECRET"), ("ls_companion", "ML_BACKEND_WEBHOOK_SECRET")},
]
#: Variables naming a folder that must be a named volume, the same one in every service that sets it.
PERSISTENT_DIRS = ("DATA_DIR", "MODEL_DIR")


# -- small parsers -----------------------------------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*)|(?P<lone>))"
)
_URL = re.compile(
    r"\b(?P<scheme>https?|redis)://(?:[^@/\s'\"]*@)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?"
    r"(?P<path>/[^\s'\"?#]*)?"
)


def strings(node: Any) -> Iterator[str]:
    """Every string value (not key) in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def interpolation_names(value: str) -> set[str]:
    return {m["braced"] or m["named"] for m in _VAR.finditer(value) if m["braced"] or m["named"]}


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one value (``$$``, ``$X``, ``${X}``, ``${X:-d}``, ``${X-d}``,
    ``${X:?e}``, ``${X?e}``, ``${X:+a}``, ``${X+a}``) with ``env`` as the .env file."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        if name is None:
            return "$"
        present, current = name in env, env.get(name, "")
        op, arg = m["op"], m["arg"] or ""
        if op == ":-":
            return current or arg
        if op == "-":
            return current if present else arg
        if op == ":+":
            return arg if current else ""
        if op == "+":
            return arg if present else ""
        return current

    return _VAR.sub(one, value)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    return node


def parse_env_file(text: str) -> tuple[dict[str, str], list[str]]:
    """KEY=VALUE lines of an .env file, and a problem per line that is not one (or repeats a key)."""
    values: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
            problems.append(f".env.example line {number}: not KEY=VALUE: {line!r}")
        elif key in values:
            problems.append(f".env.example line {number}: {key} is defined twice")
        else:
            values[key] = value.strip().strip("'\"")
    return values, problems


def image_tag(reference: str) -> str | None:
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def image_repository(reference: str) -> str:
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else requirement


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # 0 before the first FROM, then 1, 2, ...
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    stage, pending, start = 0, "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append(Instruction(keyword, args.strip(), stage, start))
    return result


def _words(args: str) -> list[str]:
    if args.startswith("["):
        loaded = json.loads(args)
        return [str(word) for word in loaded]
    return shlex.split(args)


def _env_names(args: str) -> list[str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # the legacy form ENV NAME value
        return [words[0]]
    return [word.split("=", 1)[0] for word in words]


def substitute_args(value: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore ``patterns`` exclude ``path`` (or a folder above it); last match wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        variants = {pattern}
        while pattern.startswith("**/"):
            pattern = pattern[3:]
            variants.add(pattern)
        if any(fnmatch.fnmatchcase(candidate, v) for candidate in candidates for v in variants):
            excluded = not negate
    return excluded


def module_binds(module: str, attr: str) -> str | None:
    """None if ``module`` exists and binds ``attr`` at top level (read, not imported), else why not."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return f"no module {module!r} in the project"
    names: set[str] = set()
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    if attr not in names:
        return f"{module} ({spec.origin}) has no top-level {attr!r}"
    return None


def load_object(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variable names a pydantic-settings class reads (upper-cased unless case-sensitive)."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif info.alias:
            names.add(info.alias)
        else:
            names.add(prefix + name)
    if cls.model_config.get("case_sensitive"):
        return names
    return {n.upper() for n in names}


def settings_problem(cls: type[BaseSettings], env: Mapping[str, str]) -> str | None:
    """Why ``cls`` refuses this environment (the first validation error), or None."""
    with mock.patch.dict(os.environ, dict(env), clear=True):
        try:
            cls()
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first["loc"]).upper()
            return f"{name}: {first['msg']}"
    return None


@cache
def typer_command(module: str) -> Any:
    """The click command of the Typer app ``app`` of ``module`` (our CLI modules' convention)."""
    found = getattr(importlib.import_module(module), "app", None)
    if not isinstance(found, typer.Typer):
        raise LookupError(f"{module} has no Typer app named `app`")
    return typer.main.get_command(found)


def click_message(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if callable(format_message) else exc)


def gunicorn_args(args: list[str]) -> tuple[Any, str | None]:
    """gunicorn's own argument parser on ``args``: the namespace, or None and its error."""
    from gunicorn.config import Config

    errors = io.StringIO()
    try:
        with redirect_stderr(errors):
            return Config(prog="gunicorn").parser().parse_args(args), None
    except SystemExit:
        lines = errors.getvalue().strip().splitlines()
        return None, lines[-1] if lines else "gunicorn refused the arguments"


# -- the checker -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: str


@dataclass
class Command:
    """What the checker learned about one command line."""

    problems: list[str] = field(default_factory=list)
    package: str | None = None  # which of our packages runs
    ports: set[int] = field(default_factory=set)  # where it listens
    paths: list[str] = field(default_factory=list)  # absolute paths among its parsed arguments
    program: str = ""


@dataclass
class Deployment:
    root: Path
    compose: dict[str, Any]  # as parsed, before interpolation
    env_example: dict[str, str]
    env_example_problems: list[str]
    dockerfiles: dict[str, str]  # path relative to root -> text
    dockerignore: list[str]
    pyproject: dict[str, Any]
    gitignore: list[str]

    @classmethod
    def load(cls, root: Path) -> Deployment:
        compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
        env_example, env_problems = parse_env_file((root / ".env.example").read_text(encoding="utf-8"))
        dockerfiles = {p.name: p.read_text(encoding="utf-8") for p in root.glob("Dockerfile*")}
        ignore = root / ".dockerignore"
        patterns = [
            line.strip()
            for line in (ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else [])
            if line.strip() and not line.strip().startswith("#")
        ]
        gitignore = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        return cls(root, compose, env_example, env_problems, dockerfiles, patterns, pyproject, gitignore)

    # -- views

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """The services after interpolation with .env.example as the .env file."""
        raw = self.compose.get("services") or {}
        return {name: interpolated(spec or {}, self.env_example) for name, spec in raw.items()}

    def environment(self, service: str) -> dict[str, str | None]:
        env = self.services[service].get("environment") or {}
        if isinstance(env, list):
            pairs = [item.split("=", 1) if "=" in item else [item, None] for item in env]
            return {str(p[0]): p[1] for p in pairs}
        return {
            str(k): (None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in env.items()
        }

    def mounts(self, service: str) -> list[Mount]:
        result = []
        for item in self.services[service].get("volumes") or []:
            if isinstance(item, dict):
                kind = str(item.get("type", "volume"))
                result.append(Mount(kind, str(item.get("source", "")), str(item["target"])))
                continue
            parts = str(item).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            result.append(Mount(kind, source, target))
        return result

    def build(self, service: str) -> dict[str, Any] | None:
        build = self.services[service].get("build")
        if build is None:
            return None
        return {"context": build} if isinstance(build, str) else dict(build)

    def is_ours(self, service: str) -> bool:
        return self.build(service) is not None

    def argv(self, service: str) -> list[str] | None:
        command = self.services[service].get("command")
        if command is None:
            return None
        return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]

    def health_argv(self, service: str) -> tuple[str, list[str]] | None:
        """The health check as (form, words): form CMD or CMD-SHELL; None without one."""
        check = self.services[service].get("healthcheck")
        if not check or check.get("disable"):
            return None
        test = check.get("test")
        if isinstance(test, str):
            return "CMD-SHELL", [test]
        words = [str(word) for word in test or []]
        if not words or words[0] == "NONE":
            return None
        return words[0], words[1:]

    def scripts(self) -> dict[str, str]:
        return dict(self.pyproject.get("project", {}).get("scripts", {}))

    def extras_requirements(self, extras: set[str]) -> tuple[set[str], list[str]]:
        """Requirement names an install of the project with ``extras`` pulls in, and unknown extras."""
        project = self.pyproject.get("project", {})
        optional: dict[str, list[str]] = project.get("optional-dependencies", {})
        own = requirement_name(project.get("name", ""))
        names = {requirement_name(r) for r in project.get("dependencies", [])}
        unknown: list[str] = []
        seen: set[str] = set()
        todo = list(extras)
        while todo:
            extra = todo.pop()
            if extra in seen:
                continue
            seen.add(extra)
            if extra not in optional:
                unknown.append(extra)
                continue
            for requirement in optional[extra]:
                if requirement_name(requirement) == own:
                    todo += re.findall(r"[\w-]+", requirement.split("[", 1)[1]) if "[" in requirement else []
                else:
                    names.add(requirement_name(requirement))
        return names, unknown

    def image_extras(self, service: str) -> set[str]:
        build = self.build(service) or {}
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(str(a).split("=", 1) for a in args)
        value = args.get("EXTRAS")
        if value is None:  # the Dockerfile's default
            value = self.dockerfile_arg_defaults(service).get("EXTRAS", "")
        return {e.strip() for e in str(value).split(",") if e.strip()}

    def dockerfile_of(self, service: str) -> tuple[str, str | None]:
        build = self.build(service) or {}
        context = str(build.get("context", "."))
        name = str(build.get("dockerfile", "Dockerfile"))
        relative = os.path.normpath(os.path.join(context, name))
        return relative, self.dockerfiles.get(relative)

    def dockerfile_arg_defaults(self, service: str) -> dict[str, str]:
        _, text = self.dockerfile_of(service)
        defaults: dict[str, str] = {}
        for ins in dockerfile_instructions(text or ""):
            if ins.keyword == "ARG" and "=" in ins.args:
                name, _, value = ins.args.partition("=")
                defaults.setdefault(name.strip(), value.strip())
        return defaults

    def copied_into_image(self, service: str) -> list[tuple[str, str]]:
        """(source relative to the context, absolute destination) of the final stage's COPY/ADD."""
        _, text = self.dockerfile_of(service)
        instructions = dockerfile_instructions(text or "")
        last = max((i.stage for i in instructions), default=0)
        workdir, result = "/", []
        for ins in instructions:
            if ins.stage != last:
                continue
            if ins.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / ins.args)
            if ins.keyword in ("COPY", "ADD"):
                words = _words(ins.args)
                if any(w.startswith("--from") for w in words):
                    continue
                paths = [w for w in words if not w.startswith("--")]
                sources, destination = paths[:-1], PurePosixPath(workdir) / paths[-1]
                into_folder = len(sources) > 1 or paths[-1].endswith("/")
                for source in sources:
                    # A folder's contents land in the destination; a file lands in it under its name
                    # when the destination is a folder.
                    is_file = (
                        self.root / str((self.build(service) or {}).get("context", ".")) / source
                    ).is_file()
                    target = (
                        destination / PurePosixPath(source).name if is_file and into_folder else destination
                    )
                    result.append((source, str(target)))
        return result

    def host_path(self, service: str, container_path: str) -> Path | str | None:
        """Where a container path comes from: a host Path (bind mount, COPY), "volume", or None."""
        path = PurePosixPath(container_path)
        for mount in self.mounts(service):
            target = PurePosixPath(mount.target)
            if path == target or target in path.parents:
                if mount.kind != "bind":
                    return "volume"
                return (self.root / mount.source / path.relative_to(target)).resolve()
        build = self.build(service) or {}
        context = self.root / str(build.get("context", "."))
        for source, destination in self.copied_into_image(service):
            target = PurePosixPath(destination)
            if path == target or target in path.parents:
                return (context / source / path.relative_to(target)).resolve()
        return None

    def command(self, where: str, service: str, argv: list[str]) -> Command:
        """Check one command line of one of our services."""
        found = Command(program=argv[0] if argv else "")
        quoted = shlex.join(argv)
        if not argv:
            found.problems.append(f"{where}: empty command")
            return found
        program, args = argv[0], argv[1:]
        scripts = self.scripts()
        if program in ("sh", "bash", "/bin/sh", "/bin/bash"):
            found.problems.append(
                f"{where}: `{quoted}`: use an exec-form list, not a shell, so it can be checked"
            )
        elif program in scripts:
            self._script(where, quoted, program, scripts[program], args, found)
        elif program == "gunicorn":
            self._gunicorn(where, quoted, args, found)
        elif program in ("python", "python3"):
            self._python(where, quoted, args, found)
        else:
            known = ", ".join(sorted([*scripts, "gunicorn", "python"]))
            found.problems.append(f"{where}: `{quoted}`: unknown program {program!r} (known: {known})")
        return found

    def _script(
        self, where: str, quoted: str, program: str, target: str, args: list[str], found: Command
    ) -> None:
        module = target.partition(":")[0]
        found.package = module.split(".")[0]
        try:
            load_object(target)
        except (ImportError, AttributeError) as exc:
            found.problems.append(f"{where}: [project.scripts] {program} = {target!r} does not load: {exc}")
            return
        try:
            group = typer_command(module)
        except LookupError as exc:
            found.problems.append(f"{where}: `{quoted}`: {exc}")
            return
        ctx = group.context_class(group, info_name=program)
        try:
            _, rest, _ = group.make_parser(ctx).parse_args(args=list(args))
        except Exception as exc:  # the click parser's usage errors
            found.problems.append(f"{where}: `{quoted}`: {program}: {click_message(exc)}")
            return
        if not rest:
            found.problems.append(f"{where}: `{quoted}`: no subcommand")
            return
        sub = group.get_command(ctx, rest[0])
        if sub is None:
            names = ", ".join(sorted(getattr(group, "commands", {})))
            found.problems.append(
                f"{where}: `{quoted}`: {program} has no subcommand {rest[0]!r} (it has: {names})"
            )
            return
        try:
            parsed = sub.make_context(rest[0], list(rest[1:]), parent=ctx)
        except Exception as exc:  # the click parser's usage errors
            found.problems.append(f"{where}: `{quoted}`: {program} {rest[0]}: {click_message(exc)}")
            return
        for value in parsed.params.values():
            values = value if isinstance(value, list | tuple) else [value]
            found.paths += [str(v) for v in values if isinstance(v, str | Path) and str(v).startswith("/")]

    def _gunicorn(self, where: str, quoted: str, args: list[str], found: Command) -> None:
        namespace, error = gunicorn_args(args)
        if namespace is None:
            found.problems.append(f"{where}: `{quoted}`: {error}")
            return
        if len(namespace.args) != 1 or ":" not in namespace.args[0]:
            found.problems.append(f"{where}: `{quoted}`: give gunicorn exactly one MODULE:ATTR")
            return
        module, _, attr = namespace.args[0].partition(":")
        found.package = module.split(".")[0]
        if problem := module_binds(module, attr):
            found.problems.append(f"{where}: `{quoted}`: {problem}")
        for bind in namespace.bind or []:
            port = str(bind).rsplit(":", 1)[-1]
            if port.isdigit():
                found.ports.add(int(port))
        if not found.ports:
            found.problems.append(
                f"{where}: `{quoted}`: no --bind HOST:PORT (gunicorn's default is 127.0.0.1)"
            )

    def _python(self, where: str, quoted: str, args: list[str], found: Command) -> None:
        if len(args) >= 2 and args[0] == "-c":
            try:
                compile(args[1], where, "exec")
            except SyntaxError as exc:
                found.problems.append(f"{where}: `{quoted}`: the -c code does not compile: {exc.msg}")
        elif len(args) >= 2 and args[0] == "-m":
            found.package = args[1].split(".")[0]
            try:
                spec = importlib.util.find_spec(args[1])
            except ModuleNotFoundError:
                spec = None
            if spec is None:
                found.problems.append(f"{where}: `{quoted}`: no module {args[1]!r}")
        else:
            found.problems.append(
                f"{where}: `{quoted}`: only `python -c CODE` and `python -m MODULE` are checked"
            )

    def commands(self) -> dict[str, Command]:
        """The checked command of each of our services."""
        result = {}
        for name in self.services:
            if not self.is_ours(name):
                continue
            argv = self.argv(name)
            if argv is None:
                found = Command(problems=[f"services.{name}: no `command` (the image has no default)"])
            else:
                found = self.command(f"services.{name}.command", name, argv)
            if self.services[name].get("entrypoint") is not None:
                found.problems.append(
                    f"services.{name}: `entrypoint` is not checked: put it all in `command`"
                )
            result[name] = found
        return result

    def label_studio_services(self) -> list[str]:
        return [
            name
            for name, spec in self.services.items()
            if image_repository(str(spec.get("image", ""))) == image_repository(LS_IMAGE)
        ]

    def listening_ports(self, service: str, commands: Mapping[str, Command]) -> set[int]:
        if service in commands:
            return commands[service].ports
        image = self.services[service].get("image")
        port = IMAGE_PORTS.get(image_repository(str(image))) if image else None
        return {port} if port else set()

    # -- checks

    def image_problems(self) -> list[str]:
        problems = []
        by_image: dict[str, list[str]] = {}
        for name, spec in self.services.items():
            where = f"services.{name}"
            image, build = spec.get("image"), self.build(name)
            if image is None and build is None:
                problems.append(f"{where}: neither `image` nor `build`")
            if image is not None:
                tag = image_tag(str(image))
                if tag is None or tag == "latest":
                    problems.append(f"{where}: image {image!r} is not pinned to a version tag")
                by_image.setdefault(str(image), []).append(name)
            if build is not None:
                relative, text = self.dockerfile_of(name)
                if not (self.root / str(build.get("context", "."))).is_dir():
                    problems.append(f"{where}.build: no context folder {build.get('context')!r}")
                if text is None:
                    problems.append(f"{where}.build: no Dockerfile {relative!r} in the repository")
        for image, names in by_image.items():
            builds = {json.dumps(self.build(n), sort_keys=True) for n in names if self.build(n) is not None}
            if len(builds) > 1:
                problems.append(
                    f"services {', '.join(names)}: tag {image!r} is built from different build sections"
                )
        return problems

    def command_problems(self) -> list[str]:
        problems = []
        scripts = self.scripts()
        for program in ("ls-companion", "ml-backend"):
            if program not in scripts:
                problems.append(f"pyproject.toml: [project.scripts] declares no {program!r}")
        for name, found in self.commands().items():
            problems += found.problems
            if found.problems:  # the reason is given; what runs is unknown
                continue
            if found.package is None:
                problems.append(f"services.{name}: `{found.program}` runs none of our packages")
            elif found.package not in PACKAGES:
                problems.append(
                    f"services.{name}: runs {found.package!r}, which is not one of {sorted(PACKAGES)}"
                )
        for name in self.services:
            health = self.health_argv(name)
            if health is None:
                continue
            form, words = health
            where = f"services.{name}.healthcheck"
            if form not in ("CMD", "CMD-SHELL"):
                problems.append(f"{where}: test must start with CMD or CMD-SHELL, not {form!r}")
            elif form == "CMD-SHELL" and self.is_ours(name):
                problems.append(f"{where}: use the CMD form (a list) so that the check can be checked")
            elif form == "CMD" and words and words[0] in ("python", "python3"):
                found = Command()
                self._python(where, shlex.join(words), words[1:], found)
                problems += found.problems
            elif form == "CMD" and self.is_ours(name):
                problems += self.command(where, name, words).problems
        return problems

    def extras_problems(self) -> list[str]:
        problems = []
        for name, found in self.commands().items():
            if found.package not in PACKAGES:
                continue
            package = PACKAGES[found.package]
            extras = self.image_extras(name)
            requirements, unknown = self.extras_requirements(extras)
            where = f"services.{name}.build.args.EXTRAS"
            for extra in unknown:
                problems.append(f"{where}: pyproject.toml has no extra {extra!r}")
            if package.extra not in extras:
                problems.append(
                    f"{where}: {sorted(extras)} lacks {package.extra!r}, which {found.package} needs"
                )
            for requirement in sorted(package.forbidden_requirements & requirements):
                problems.append(
                    f"{where}: {sorted(extras)} installs {requirement}, which {found.package} must not"
                )
            if found.program == "gunicorn" and "gunicorn" not in requirements:
                problems.append(f"{where}: {sorted(extras)} does not install gunicorn")
        return problems

    def environment_problems(self) -> list[str]:
        problems = []
        commands = self.commands()
        for name, found in commands.items():
            if found.package not in PACKAGES:
                continue
            package = PACKAGES[found.package]
            cls = load_object(package.settings)
            read = settings_env_names(cls)
            case_sensitive = bool(cls.model_config.get("case_sensitive"))
            env = self.environment(name)
            where = f"services.{name}.environment"
            if self.services[name].get("env_file") is not None:
                problems.append(f"services.{name}: `env_file` hides which variables reach the process")
            for key, value in env.items():
                wanted = key if case_sensitive else key.upper()
                if value is None:
                    problems.append(f"{where}.{key}: no value (it would come from the host's environment)")
                if wanted not in read and key not in OTHER_PROGRAMS_ENV:
                    problems.append(
                        f"{where}.{key}: not read by {package.settings} (it reads {', '.join(sorted(read))}) "
                        f"and not in OTHER_PROGRAMS_ENV"
                    )
            complete = {k: v for k, v in env.items() if v is not None}
            if problem := settings_problem(cls, complete):
                problems.append(f"{where}: {package.settings} refuses it: {problem}")
        return problems

    def agreement_problems(self) -> list[str]:
        """One token, one set of backend credentials, URLs that name services, shared volumes."""
        problems = []
        commands = self.commands()
        values: dict[tuple[str, str], set[str]] = {}
        for name, found in commands.items():
            for key, value in self.environment(name).items():
                if found.package is not None and value is not None:
                    values.setdefault((found.package, key), set()).add(value)
        for ls in self.label_studio_services():
            token = ls_setting(self.environment(ls), "USER_TOKEN")
            for name in commands:
                api_key = self.environment(name).get("LABEL_STUDIO_API_KEY")
                if api_key is not None and api_key != token:
                    problems.append(
                        f"services.{name}.environment.LABEL_STUDIO_API_KEY differs from "
                        f"services.{ls}'s LABEL_STUDIO_USER_TOKEN (the admin's token)"
                    )
        for group in SHARED_VALUES:
            seen = {value for member in group for value in values.get(member, set())}
            if len(seen) > 1:
                names = " / ".join(sorted(f"{pkg}:{key}" for pkg, key in group))
                problems.append(f"{names}: set to different values in different services")
        for name in commands:
            depends = self.services[name].get("depends_on") or {}
            for key, value in self.environment(name).items():
                for match in _URL.finditer(value or ""):
                    host = match["host"]
                    port = int(match["port"] or DEFAULT_PORTS[match["scheme"]])
                    where = f"services.{name}.environment.{key}"
                    if host not in self.services:
                        problems.append(f"{where}: {match.group(0)} names no service of the compose file")
                        continue
                    if host not in depends:
                        problems.append(f"{where}: calls {host!r}, which is missing from its depends_on")
                    ports = self.listening_ports(host, commands)
                    if ports and port not in ports:
                        problems.append(f"{where}: {host!r} listens on {sorted(ports)}, not {port}")
        for variable in PERSISTENT_DIRS:
            volumes = set()
            for name in commands:
                folder = self.environment(name).get(variable)
                if folder is None:
                    continue
                mount = next(
                    (m for m in self.mounts(name) if m.target.rstrip("/") == folder.rstrip("/")), None
                )
                if mount is None or mount.kind != "volume":
                    problems.append(
                        f"services.{name}: {variable}={folder} is not a named volume (lost on recreate)"
                    )
                else:
                    volumes.add(mount.source)
            if len(volumes) > 1:
                problems.append(
                    f"{variable}: services mount different volumes there ({', '.join(sorted(volumes))})"
                )
        return problems

    def dependency_problems(self) -> list[str]:
        problems = []
        commands = self.commands()
        for name, spec in self.services.items():
            depends = spec.get("depends_on") or {}
            if isinstance(depends, list):
                problems.append(f"services.{name}.depends_on: a list has no conditions; use `condition:`")
                continue
            for target, rule in depends.items():
                where = f"services.{name}.depends_on.{target}"
                condition = (rule or {}).get("condition")
                if target not in self.services:
                    problems.append(f"{where}: no such service")
                elif condition == "service_healthy" and self.health_argv(target) is None:
                    problems.append(f"{where}: service_healthy, but {target} has no health check")
                elif condition == "service_completed_successfully":
                    if self.services[target].get("restart") not in (None, "no"):
                        problems.append(f"{where}: {target} restarts, so it never completes")
                elif condition not in ("service_healthy", "service_started"):
                    problems.append(f"{where}: condition {condition!r}")
        for name in self.services:
            health = self.health_argv(name)
            if self.listening_ports(name, commands) and health is None:
                problems.append(f"services.{name}: listens but has no health check")
            if health is None:
                continue
            for match in _URL.finditer(" ".join(health[1])):
                where = f"services.{name}.healthcheck"
                path = match["path"] or "/"
                if match["host"] not in ("127.0.0.1", "localhost", name):
                    problems.append(f"{where}: checks {match['host']!r}, not the service itself")
                ports = self.listening_ports(name, commands)
                if match["port"] and ports and int(match["port"]) not in ports:
                    problems.append(f"{where}: port {match['port']}, but it listens on {sorted(ports)}")
                if path != "/health":
                    problems.append(f"{where}: asks {path!r}, not /health")
            image = str(self.services[name].get("image", ""))
            if image_repository(image) == "redis" and health[1] != ["redis-cli", "ping"]:
                problems.append(f"services.{name}.healthcheck: not `redis-cli ping`")
        used, declared = set(), set((self.compose.get("volumes") or {}).keys())
        for name in self.services:
            for mount in self.mounts(name):
                if mount.kind == "volume" and mount.source:
                    used.add(mount.source)
                    if mount.source not in declared:
                        problems.append(
                            f"services.{name}.volumes: {mount.source!r} is not under top-level volumes"
                        )
        for volume in sorted(declared - used):
            problems.append(f"volumes.{volume}: declared but mounted by no service")
        return problems

    def label_studio_problems(self) -> list[str]:
        problems = []
        names = self.label_studio_services()
        if len(names) != 1:
            return [f"services: {len(names)} Label Studio services (image heartexlabs/label-studio), want 1"]
        name = names[0]
        where = f"services.{name}"
        image = self.services[name]["image"]
        if image != LS_IMAGE:
            problems.append(f"{where}.image: {image!r}, want {LS_IMAGE!r}")
        env = self.environment(name)
        for switch in LS_NETWORK_SWITCHES:
            value, key = ls_lookup(env, switch)
            if value is None or value.lower() not in LS_FALSE:
                problems.append(
                    f"{where}.environment: {switch} is {value!r} (from {key or 'nothing'}); it must be false "
                    f"(LS reads {' then '.join(p + switch for p in LS_ENV_PREFIXES)})"
                )
        legacy, _ = ls_lookup(env, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN")
        if legacy is None or legacy.lower() not in LS_TRUE:
            problems.append(f"{where}.environment: LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN must be true")
        for setting in ("USERNAME", "PASSWORD", "USER_TOKEN"):
            if not ls_setting(env, setting):
                problems.append(f"{where}.environment: LABEL_STUDIO_{setting} is not set")
        token = ls_setting(env, "USER_TOKEN") or ""
        if token and not 5 <= len(token) <= 40:
            problems.append(
                f"{where}.environment: the .env.example token has {len(token)} characters; LS needs 5-40"
            )
        for telemetry in ("SENTRY_DSN", "FRONTEND_SENTRY_DSN"):
            if ls_lookup(env, telemetry)[0] != "":
                problems.append(
                    f"{where}.environment: {telemetry} must be set to an empty string (no reports)"
                )
        analytics, _ = ls_lookup(env, "COLLECT_ANALYTICS")
        if analytics is None or analytics.lower() not in LS_FALSE:
            problems.append(f"{where}.environment: COLLECT_ANALYTICS must be false")
        data = [m for m in self.mounts(name) if m.target.rstrip("/") == LS_DATA_DIR]
        if not data or data[0].kind != "volume":
            problems.append(f"{where}.volumes: {LS_DATA_DIR} (uploads, exports) must be a named volume")
        if self.health_argv(name) is None:
            problems.append(f"{where}: no health check")
        if self.argv(name) != LS_PRODUCTION_COMMAND:
            problems.append(
                f"{where}.command: {self.argv(name)!r}, want {LS_PRODUCTION_COMMAND!r} (the image's production server)"
            )
        return problems + self.database_problems(name)

    def database_problems(self, name: str) -> list[str]:
        """Label Studio on a PostgreSQL service: the same database, user and password on both sides."""
        where = f"services.{name}"
        env = self.environment(name)
        if env.get("DJANGO_DB") != "default":
            return [f"{where}.environment: DJANGO_DB is {env.get('DJANGO_DB')!r}; 'default' means PostgreSQL"]
        host = env.get("POSTGRE_HOST") or ""
        if image_repository(str(self.services.get(host, {}).get("image", ""))) != "postgres":
            return [f"{where}.environment.POSTGRE_HOST: {host!r} is not a postgres service"]
        problems = []
        rule = (self.services[name].get("depends_on") or {}).get(host) or {}
        if rule.get("condition") != "service_healthy":
            problems.append(f"{where}.depends_on.{host}: must wait for service_healthy")
        db = self.environment(host)
        user = db.get("POSTGRES_USER") or "postgres"  # the image's defaults
        wanted = {
            "POSTGRE_NAME": db.get("POSTGRES_DB") or user,
            "POSTGRE_USER": user,
            "POSTGRE_PASSWORD": db.get("POSTGRES_PASSWORD"),
            "POSTGRE_PORT": "5432",
        }
        for key, value in wanted.items():
            if env.get(key) != value:
                problems.append(
                    f"{where}.environment.{key}: {env.get(key)!r}, but services.{host} has {value!r}"
                )
        data = [m for m in self.mounts(host) if m.target.rstrip("/") == POSTGRES_DATA_DIR]
        if not data or data[0].kind != "volume":
            problems.append(f"services.{host}.volumes: {POSTGRES_DATA_DIR} must be a named volume")
        health = self.health_argv(host)
        if health is None or not health[1] or health[1][0] != "pg_isready":
            problems.append(f"services.{host}.healthcheck: not `pg_isready`")
        return problems

    def file_problems(self) -> list[str]:
        """Bind-mount sources exist; absolute paths our commands name exist; specs among them parse."""
        problems = []
        commands = self.commands()
        for name in self.services:
            for mount in self.mounts(name):
                if mount.kind == "bind" and not (self.root / mount.source).exists():
                    problems.append(f"services.{name}.volumes: {mount.source!r} does not exist")
        for name, found in commands.items():
            for path in found.paths:
                where = f"services.{name}.command: {path}"
                host = self.host_path(name, path)
                if host == "volume":
                    continue
                if host is None:
                    problems.append(f"{where}: neither mounted nor copied into the image")
                elif isinstance(host, Path) and not host.exists():
                    shown = host.relative_to(self.root) if host.is_relative_to(self.root) else host
                    problems.append(f"{where}: {shown} does not exist")
                elif (
                    isinstance(host, Path)
                    and host.suffix in (".yaml", ".yml")
                    and found.package == "ls_companion"
                ):
                    problems += [f"{where}: {p}" for p in self.spec_problems(name, host)]
        return problems

    def spec_problems(self, service: str, spec_path: Path) -> list[str]:
        """A project spec as the service would read it: schema, label config, pilot and pool files."""
        from ls_companion.bootstrap.spec import read_spec, resolve_label_config
        from ls_companion.errors import CompanionError
        from ls_companion.sync.options import spec_options

        try:
            spec = read_spec(spec_path)
            options = spec_options(spec.sync, spec_path.parent)
        except CompanionError as exc:
            return [str(exc)]
        problems = []
        configs = self.environment(service).get("LABEL_CONFIGS_DIR")
        configs_dir = self.host_path(service, configs) if configs else None
        try:
            # Without LABEL_CONFIGS_DIR a non-editable install looks next to site-packages: nothing there.
            resolve_label_config(
                spec.label_config,
                spec_path.parent,
                configs_dir if isinstance(configs_dir, Path) else spec_path.parent,
            )
        except CompanionError as exc:
            problems.append(f"{exc} (LABEL_CONFIGS_DIR={configs})")
        files = [spec.pilot.file] if spec.pilot else []
        if options.topup is not None:
            files.append(options.topup.pool)
        for item in files:
            if not (spec_path.parent / item).is_file():
                problems.append(f"{item}: no such file next to the spec")
        return problems

    def dockerfile_problems(self) -> list[str]:
        problems = []
        built = [n for n in self.services if self.is_ours(n)]
        checked: set[str] = set()
        project = self.pyproject.get("project", {})
        needed = {"pyproject.toml", str(project.get("readme", "README.md"))}
        find = self.pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
        for pattern in find.get("include", []):
            needed |= {p.name for p in self.root.glob(pattern) if (p / "__init__.py").is_file()}
        for name in built:
            relative, text = self.dockerfile_of(name)
            if text is None or relative in checked:
                continue
            checked.add(relative)
            build = self.build(name) or {}
            context = self.root / str(build.get("context", "."))
            instructions = dockerfile_instructions(text)
            args = {i.args.split("=", 1)[0].strip() for i in instructions if i.keyword == "ARG"}
            global_args = {
                i.args.split("=", 1)[0].strip(): i.args.split("=", 1)[1].strip()
                for i in instructions
                if i.keyword == "ARG" and i.stage == 0 and "=" in i.args
            }
            copied = set()
            for ins in instructions:
                where = f"{relative}:{ins.line}"
                if ins.keyword == "FROM":
                    base = substitute_args(ins.args.split()[0], global_args)
                    tag = image_tag(base)
                    if tag is None or tag == "latest" or "$" in base:
                        problems.append(f"{where}: base image {base!r} is not pinned")
                    elif image_repository(base) == "python" and not tag.startswith(("3.11", "3.12", "3.13")):
                        problems.append(
                            f"{where}: python {tag} does not meet requires-python {project.get('requires-python')}"
                        )
                if ins.keyword == "ENV":
                    for variable in _env_names(ins.args):
                        owners = [
                            p
                            for p, pkg in PACKAGES.items()
                            if variable.upper() in settings_env_names(load_object(pkg.settings))
                        ]
                        if not owners and variable not in OTHER_PROGRAMS_ENV:
                            problems.append(
                                f"{where}: ENV {variable} is read by none of our settings and not in OTHER_PROGRAMS_ENV"
                            )
                if ins.keyword in ("COPY", "ADD"):
                    words = _words(ins.args)
                    if any(w.startswith("--from") for w in words):
                        continue
                    for source in [w for w in words if not w.startswith("--")][:-1]:
                        copied.add(PurePosixPath(source).parts[0] if source not in (".", "./") else ".")
                        if not (context / source).exists():
                            problems.append(f"{where}: COPY source {source!r} does not exist")
                        elif ignored(source, self.dockerignore):
                            problems.append(f"{where}: COPY source {source!r} is excluded by .dockerignore")
            if "." not in copied:
                for item in sorted(needed - copied):
                    problems.append(f"{relative}: pip install needs {item!r}, which no COPY brings in")
            if not any(
                i.keyword == "RUN" and "pip install" in i.args and "EXTRAS" in i.args for i in instructions
            ):
                problems.append(f"{relative}: no `RUN pip install` of the project with the EXTRAS argument")
            for service in built:
                build_args = (self.build(service) or {}).get("args") or {}
                for arg in build_args:
                    if arg not in args:
                        problems.append(f"services.{service}.build.args.{arg}: no ARG {arg} in {relative}")
        return problems

    def env_example_problems_all(self) -> list[str]:
        problems = list(self.env_example_problems)
        used: set[str] = set()
        for value in strings(self.compose):
            used |= interpolation_names(value)
            if any(m["lone"] is not None for m in _VAR.finditer(value)):
                problems.append(f"docker-compose.yml: a lone '$' in {value!r} (write '$$')")
        for name in sorted(used - set(self.env_example)):
            problems.append(
                f"docker-compose.yml interpolates ${{{name}}}, which .env.example does not define"
            )
        for name in sorted(set(self.env_example) - used):
            problems.append(f".env.example defines {name}, which docker-compose.yml never uses")
        for name, value in self.env_example.items():
            if not value:
                problems.append(f".env.example: {name} has no example value")
        if not any(line.strip() in (".env", "/.env") for line in self.gitignore):
            problems.append(".gitignore does not ignore .env (it holds the secrets)")
        return problems

    def problems(self) -> list[str]:
        checks: list[Callable[[], list[str]]] = [
            self.image_problems,
            self.command_problems,
            self.extras_problems,
            self.environment_problems,
            self.agreement_problems,
            self.dependency_problems,
            self.label_studio_problems,
            self.file_problems,
            self.dockerfile_problems,
            self.env_example_problems_all,
        ]
        return [problem for check in checks for problem in check()]


def ls_lookup(env: Mapping[str, str | None], name: str) -> tuple[str | None, str | None]:
    """The value Label Studio's get_env(name) sees, and the variable it came from."""
    for prefix in LS_ENV_PREFIXES:
        value = env.get(prefix + name)
        if value is not None:
            return value, prefix + name
    return None, None


def ls_setting(env: Mapping[str, str | None], name: str) -> str | None:
    return ls_lookup(env, name)[0]


# -- the tests ---------------------------------------------------------------------------------------------
