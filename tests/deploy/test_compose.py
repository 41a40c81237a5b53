"""Static checks of ``docker-compose.yml``, ``Dockerfile``, ``.dockerignore`` and ``.env.example``.

There is no Docker engine on the CI machine, so nothing is built or started: the files are
parsed and checked against the code they configure (the settings the service reads, the ``hpo``
and ``ray`` command lines, the files the Dockerfile copies). Each check is a function returning
its problems, so the negative tests below can feed it a deliberately broken compose file.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from pydantic import AliasChoices

from service.local_server import REPO
from service.settings import Settings

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
Compose = dict[str, Any]
# HPO_ variables read outside Settings: passed through to the study driver (tests only).
PASSTHROUGH = {"HPO_FAULT_INJECTION", "HPO_TOY_EPOCH_SECONDS"}
RAY_HEAD_PORT, RAY_DASHBOARD_PORT, RAY_CLIENT_PORT = 6379, 8265, 10001  # `ray start` defaults
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ escapes a $.
_VARIABLE = re.compile(
    r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    """The compose file as plain data (YAML anchors and ``<<`` merges resolved)."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        assert sep and key.strip().isidentifier(), f"{path.name}:{number}: not KEY=value: {raw}"
        values[key.strip()] = value.strip().strip("'\"")
    return values


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    """The services by name."""
    found = compose.get("services") or {}
    assert isinstance(found, dict), "`services` is not a mapping"
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment (mapping or ``KEY=value`` list form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in map(str, env))
        return {key: value for key, _, value in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def strings(node: Any) -> Iterator[str]:
    """Every string value under ``node`` (keys too: compose interpolates values only, but a
    variable in a key is a mistake worth seeing)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def interpolated_variables(compose: Compose) -> set[str]:
    """Names of the variables the compose file interpolates."""
    return {
        m["braced"] or m["plain"] for text in strings(compose) for m in _VARIABLE.finditer(text)
    }


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation of one string with ``values`` (defaults honoured)."""

    def one(m: re.Match[str]) -> str:
        name = m["braced"] or m["plain"]
        value = values.get(name)
        op, arg = m["op"] or "", m["arg"] or ""
        if op == ":-" or (op == "-" and value is None):
            return value or arg
        if op in (":?", "?") and not value:
            raise ValueError(f"${{{name}}} is required: {arg}")
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    return _VARIABLE.sub(one, text).replace("$$", "$")


def command_args(command: Any) -> list[str]:
    """A ``command`` (or healthcheck ``test``) as an argument list; shell forms are split."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    args = [str(a) for a in command]
    if args and args[0] == "CMD":
        return args[1:]
    if args and args[0] == "CMD-SHELL":
        return shlex.split(" ".join(args[1:]))
    return args


def has_healthcheck(service: dict[str, Any]) -> bool:
    """True when the service defines an enabled healthcheck."""
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test != ["NONE"]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the list form means ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {str(name): "service_started" for name in deps}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in deps.items()
    }


def ray_start_params(service: dict[str, Any]) -> dict[str, Any] | None:
    """The parsed options of a ``ray start`` service command, else None."""
    args = command_args(service.get("command"))
    if args[:2] != ["ray", "start"]:
        return None
    return dict(_ray_cli("start").make_context("start", args[2:]).params)


def settings_env_names() -> dict[str, str]:
    """Environment variable -> the ``Settings`` field it sets: HPO_<FIELD>, or the field's
    validation aliases instead when it has them (pydantic-settings then reads only those);
    upper-cased, as names are case-insensitive."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names[f"{prefix}{name}".upper()] = name
        elif isinstance(alias, str):
            names[alias.upper()] = name
        elif isinstance(alias, AliasChoices):
            names.update({c.upper(): name for c in alias.choices if isinstance(c, str)})
    return names


def _ray_cli(name: str) -> click.Command:
    from ray.scripts.scripts import cli

    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"ray has no `{name}` command"
    return command


def _hpo_cli() -> Any:
    """The ``hpo`` console script's command group, found through its installed entry point.

    Typer vendors its own click, so the group is handled by duck typing."""
    from importlib.metadata import entry_points

    import typer.main

    (script,) = entry_points(group="console_scripts", name="hpo")
    return typer.main.get_command(script.load())


def check_cli(args: list[str]) -> str | None:
    """Parse an ``hpo …`` or ``ray …`` command line with the real CLI; the problem, or None."""
    if not args or args[0] not in ("hpo", "ray"):
        return None
    if len(args) < 2:
        return f"`{args[0]}` without a subcommand"
    if args[0] == "hpo":
        group = _hpo_cli()
    else:
        from ray.scripts.scripts import cli as group
    command = group.get_command(group.context_class(group), args[1])
    if command is None:
        return f"`{args[0]} {args[1]}` is not a command"
    try:
        command.make_context(args[1], list(args[2:]))
    except Exception as exc:  # click's or Typer's own click's UsageError
        if not hasattr(exc, "format_message"):
            raise
        return f"`{shlex.join(args)}`: {exc.format_message()}"
    return None


# ---------------------------------------------------------------------------------------------
# The checks: each returns its problems (empty: fine)
# ---------------------------------------------------------------------------------------------


def check_builds(compose: Compose, root: Path = REPO) -> list[str]:
    """Every service has an image or a build whose context holds its Dockerfile, whose COPY
    sources exist and are not excluded by .dockerignore, and which keeps .venv/.git out."""
    problems: list[str] = []
    for name, service in services(compose).items():
        build = service.get("build")
        if build is None:
            if not service.get("image"):
                problems.append(f"{name}: neither `image` nor `build`")
            continue
        spec = {"context": build} if isinstance(build, str) else dict(build)
        context = (root / str(spec.get("context", "."))).resolve()
        dockerfile = context / str(spec.get("dockerfile", "Dockerfile"))
        if not context.is_dir():
            problems.append(f"{name}: build context {context} does not exist")
            continue
        if not dockerfile.is_file():
            problems.append(f"{name}: {dockerfile.name} is not in the build context {context}")
            continue
        ignored = _dockerignore(context)
        for source in _copy_sources(dockerfile):
            if not (context / source).exists():
                problems.append(f"{name}: {dockerfile.name} copies {source}, not in the context")
            elif _ignored(source, ignored):
                problems.append(
                    f"{name}: {dockerfile.name} copies {source}, but .dockerignore excludes it"
                )
        for heavy in (".venv", ".git"):
            if (context / heavy).exists() and not _ignored(heavy, ignored):
                problems.append(f"{name}: .dockerignore does not keep {heavy} out of the context")
    return problems


def check_hpo_environment(compose: Compose, values: dict[str, str]) -> list[str]:
    """Every HPO_ variable a service sets is one the service reads (typos are silently ignored
    by Settings), and each service's environment loads into Settings."""
    fields = settings_env_names()
    known = set(fields) | PASSTHROUGH
    problems: list[str] = []
    for name, service in services(compose).items():
        env = environment(service)
        ours = {k: v for k, v in env.items() if k.upper().startswith("HPO_")}
        problems += [
            f"{name}: {key} is not read by service.settings.Settings"
            for key in ours
            if key.upper() not in known
        ]
        if not ours:
            continue
        try:
            read = {
                fields[k.upper()]: interpolate(v, values)
                for k, v in ours.items()
                if k.upper() in fields
            }
            Settings.model_validate(read)  # validation only: does not read this process's env
        except ValueError as exc:
            problems.append(f"{name}: its HPO_ environment is not valid Settings: {exc}")
    return problems


def check_ports(compose: Compose) -> list[str]:
    """No two services (or two entries) publish the same host port."""
    taken: dict[tuple[int, str], list[tuple[str, str]]] = {}
    problems: list[str] = []
    for name, service in services(compose).items():
        for entry in service.get("ports") or []:
            try:
                published = _published(entry)
            except ValueError as exc:
                problems.append(f"{name}: bad port mapping {entry!r}: {exc}")
                continue
            for host_ip, port, protocol in published:
                for other, other_ip in taken.get((port, protocol), []):
                    if _same_address(host_ip, other_ip):
                        problems.append(f"host port {port}/{protocol}: both {other} and {name}")
                taken.setdefault((port, protocol), []).append((name, host_ip))
    return problems


def check_interpolation(compose: Compose, example: dict[str, str]) -> list[str]:
    """Every variable the compose file interpolates is documented in .env.example."""
    return [
        f"${{{var}}} is used in docker-compose.yml but not listed in .env.example"
        for var in sorted(interpolated_variables(compose) - set(example))
    ]


def check_healthchecks(compose: Compose) -> list[str]:
    """Every service has a healthcheck, or waits for a healthy service; every dependency
    exists, and every `service_healthy` dependency has a healthcheck."""
    all_services = services(compose)
    problems: list[str] = []
    for name, service in all_services.items():
        deps = depends_on(service)
        for dep, condition in deps.items():
            if dep not in all_services:
                problems.append(f"{name}: depends on {dep}, which is not a service")
            elif condition == "service_healthy" and not has_healthcheck(all_services[dep]):
                problems.append(f"{name}: waits for {dep} to be healthy, but it has no healthcheck")
        waits_healthy = any(
            c == "service_healthy" and d in all_services and has_healthcheck(all_services[d])
            for d, c in deps.items()
        )
        if not has_healthcheck(service) and not waits_healthy:
            problems.append(f"{name}: no healthcheck and no healthy service it depends on")
    return problems


def check_commands(compose: Compose, root: Path = REPO) -> list[str]:
    """Every `hpo …`/`ray …` command, healthcheck and the Dockerfile's CMD parse with the real
    CLIs, and some service serves the API with `hpo serve`."""
    problems: list[str] = []
    serves = False
    for name, service in services(compose).items():
        args = command_args(service.get("command"))
        serves = serves or args[:2] == ["hpo", "serve"]
        problem = check_cli(args)
        if problem:
            problems.append(f"{name}: command {problem}")
        check = service.get("healthcheck")
        if isinstance(check, dict) and check.get("test") not in (None, ["NONE"]):
            problem = check_cli(command_args(check["test"]))
            if problem:
                problems.append(f"{name}: healthcheck {problem}")
    if not serves:
        problems.append("no service runs `hpo serve`")
    cmd = _dockerfile_cmd(root / "Dockerfile")
    if cmd is not None and (problem := check_cli(cmd)):
        problems.append(f"Dockerfile CMD {problem}")
    return problems


def check_cluster_wiring(compose: Compose, values: dict[str, str]) -> list[str]:
    """The API's Ray address is a head's dashboard; workers join a head's GCS port; every Ray
    node and the API share one token; the public dashboard URL is a published port."""
    all_services = services(compose)
    heads: dict[str, dict[str, Any]] = {}
    workers: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, service in all_services.items():
        try:
            params = ray_start_params(service)
        except click.ClickException as exc:
            problems.append(f"{name}: {exc.format_message()}")
            continue
        if params is not None:
            (heads if params.get("head") else workers)[name] = params
    if len(heads) != 1:
        return [*problems, f"expected one `ray start --head` service, found {sorted(heads)}"]
    head_name, params = next(iter(heads.items()))
    head = all_services[head_name]
    gcs = f"{head_name}:{params.get('port') or RAY_HEAD_PORT}"
    dashboard_port = int(params.get("dashboard_port") or RAY_DASHBOARD_PORT)
    client_port = int(params.get("ray_client_server_port") or RAY_CLIENT_PORT)
    for name, params in workers.items():
        if params.get("address") != gcs:
            problems.append(f"{name}: joins {params.get('address')}, the head's GCS is {gcs}")
    tokens: dict[str, str] = {}
    for name in [*heads, *workers]:
        env = {k: interpolate(v, values) for k, v in environment(all_services[name]).items()}
        if env.get("RAY_AUTH_MODE") != "token" or not env.get("RAY_AUTH_TOKEN"):
            problems.append(f"{name}: Ray token auth is off (RAY_AUTH_MODE/RAY_AUTH_TOKEN)")
        tokens[name] = env.get("RAY_AUTH_TOKEN", "")
    for name, service in all_services.items():
        if command_args(service.get("command"))[:2] != ["hpo", "serve"]:
            continue
        env = {k: interpolate(v, values) for k, v in environment(service).items()}
        address = env.get("HPO_RAY_ADDRESS") or env.get("RAY_ADDRESS")
        url = urlsplit(address if address and "://" in address else f"http://{address}")
        # the dashboard (Jobs API), or the head's Ray Client server (ray://)
        port = client_port if url.scheme == "ray" else dashboard_port
        if url.scheme not in ("http", "https", "ray") or url.hostname != head_name:
            problems.append(f"{name}: Ray address {address!r} is not http://{head_name}:…")
        elif (url.port or 80) != port:
            what = "Ray Client server" if url.scheme == "ray" else "dashboard"
            problems.append(f"{name}: Ray address {address!r}: the head's {what} is on {port}")
        if env.get("HPO_RAY_AUTH_TOKEN") != tokens.get(head_name):
            problems.append(f"{name}: HPO_RAY_AUTH_TOKEN is not the cluster's RAY_AUTH_TOKEN")
        public = env.get("HPO_DASHBOARD_PUBLIC_URL")
        if public and (urlsplit(public).port or 80) not in published_ports(head):
            problems.append(f"{name}: HPO_DASHBOARD_PUBLIC_URL {public} is not a published port")
    return problems


def check_profiles(compose: Compose, example: dict[str, str]) -> list[str]:
    """The profiles .env.example selects exist and start at least one Ray worker (the head
    runs no trials)."""
    all_services = services(compose)
    selected = {p.strip() for p in example.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    existing = {str(p) for s in all_services.values() for p in s.get("profiles") or []}
    problems = [f"COMPOSE_PROFILES names {p}, no service has it" for p in selected - existing]
    workers = []
    for name, service in all_services.items():
        if service.get("profiles") and not set(service["profiles"]) & selected:
            continue  # not started with these profiles
        with contextlib.suppress(click.ClickException):  # check_cluster_wiring reports it
            params = ray_start_params(service)
            if params is not None and not params.get("head"):
                workers.append(name)
    if not workers:
        problems.append(
            f"`docker compose up` with profiles {sorted(selected)} starts no Ray worker"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Helpers of the checks
# ---------------------------------------------------------------------------------------------


def published_ports(service: dict[str, Any]) -> set[int]:
    """Host ports a service publishes."""
    return {port for entry in service.get("ports") or [] for _, port, _ in _published(entry)}


def _published(entry: Any) -> list[tuple[str, int, str]]:
    """(host IP, host port, protocol) of one `ports` entry; [] when no host port is fixed."""
    if isinstance(entry, dict):
        if not entry.get("published"):
            return []
        ports = _port_range(str(entry["published"]))
        host_ip, protocol = str(entry.get("host_ip", "")), str(entry.get("protocol", "tcp"))
    else:
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2)
        if len(parts) == 1 or not parts[-2]:
            return []  # container port only: Docker picks an ephemeral host port
        ports, host_ip = _port_range(parts[-2]), parts[0] if len(parts) == 3 else ""
    return [(host_ip, port, protocol or "tcp") for port in ports]


def _port_range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    ports = list(range(int(low), int(high or low) + 1))
    if not ports or not all(0 < p < 65536 for p in ports):
        raise ValueError(f"{text} is not a port (range)")
    return ports


def _same_address(a: str, b: str) -> bool:
    wildcard = ("", "0.0.0.0", "::", "[::]")
    return a in wildcard or b in wildcard or a == b


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line.strip("/") for line in lines if line and not line.startswith(("#", "!"))]


def _ignored(path: str, patterns: list[str]) -> bool:
    path = path.strip("/").removeprefix("./")
    parts = Path(path).parts
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        # a pattern excludes what it matches and everything below that
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def _dockerfile_lines(dockerfile: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _copy_sources(dockerfile: Path) -> list[str]:
    """Context paths COPY/ADD instructions read (not --from= stages, not URLs)."""
    sources: list[str] = []
    for line in _dockerfile_lines(dockerfile):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() not in ("COPY", "ADD"):
            continue
        args = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        if any(a.startswith("--from=") for a in args):
            continue
        files = [a for a in args if not a.startswith("--")][:-1]
        sources += [f for f in files if "://" not in f]
    return sources


def _dockerfile_cmd(dockerfile: Path) -> list[str] | None:
    cmd = None
    for line in _dockerfile_lines(dockerfile):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "CMD":
            rest = rest.strip()
            cmd = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return cmd


# ---------------------------------------------------------------------------------------------
# Tests on the real files
# ---------------------------------------------------------------------------------------------

# Stand-ins for a filled-in .env (the example's token is empty on purpose).
FILLED_ENV = {"RAY_AUTH_TOKEN": "0" * 64, "POSTGRES_PASSWORD": "secret1"}


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return read_env_file()


def test_compose_file_parses(compose: Compose) -> None:
    assert services(compose), "docker-compose.yml defines no services"
    assert {"postgres", "ray-head", "api"} <= set(services(compose))
    for name, service in services(compose).items():
        assert isinstance(service, dict), f"{name} is not a mapping"
    assert set(compose.get("volumes") or {}) >= {
        volume.split(":")[0]
        for service in services(compose).values()
        for volume in service.get("volumes") or []
        if not volume.startswith((".", "/"))
    }, "a named volume is used but not declared"


def test_every_service_has_an_image_or_a_build_context_with_its_dockerfile(
    compose: Compose,
) -> None:
    assert check_builds(compose) == []


def test_hpo_variables_are_settings_the_service_reads(compose: Compose) -> None:
    assert check_hpo_environment(compose, FILLED_ENV) == []


def test_published_host_ports_do_not_clash(compose: Compose) -> None:
    assert check_ports(compose) == []


def test_every_interpolated_variable_is_in_env_example(
    compose: Compose, example: dict[str, str]
) -> None:
    assert interpolated_variables(compose) >= {"RAY_AUTH_TOKEN", "POSTGRES_PASSWORD"}
    assert check_interpolation(compose, example) == []


def test_env_example_holds_no_secret(example: dict[str, str]) -> None:
    assert example["RAY_AUTH_TOKEN"] == "", "the example token must be empty: generate your own"
    assert example["POSTGRES_PASSWORD"] in ("", "change-me")


def test_every_service_has_a_healthcheck_or_waits_for_a_healthy_one(compose: Compose) -> None:
    assert check_healthchecks(compose) == []
    for name, service in services(compose).items():
        if name.startswith("ray-worker"):
            assert has_healthcheck(service), f"{name}: Ray workers check the cluster themselves"


def test_commands_are_real_hpo_and_ray_commands(compose: Compose) -> None:
    assert check_commands(compose) == []


def test_the_cluster_is_wired_together(compose: Compose) -> None:
    assert check_cluster_wiring(compose, FILLED_ENV) == []


def test_default_profiles_start_a_ray_worker(compose: Compose, example: dict[str, str]) -> None:
    assert check_profiles(compose, example) == []


def test_the_required_token_fails_loudly_when_unset(compose: Compose) -> None:
    head_env = environment(services(compose)["ray-head"])
    with pytest.raises(ValueError, match="RAY_AUTH_TOKEN"):
        interpolate(head_env["RAY_AUTH_TOKEN"], {"RAY_AUTH_TOKEN": ""})


# ---------------------------------------------------------------------------------------------
# Each check fails on a deliberately broken compose file
# ---------------------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    """A mutation that sets compose[path…] (dotted; service names may hold dashes)."""

    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return mutate


def _both(*mutations: Callable[[Compose], None]) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        for one in mutations:
            one(compose)

    return mutate


BROKEN: list[tuple[str, Callable[[Compose], None], Callable[[Compose], list[str]], str]] = [
    (
        "no image, no build",
        _set("services.api.build", None),
        check_builds,
        "neither `image` nor `build`",
    ),
    (
        "build context without a Dockerfile",
        _set("services.api.build", "search_spaces"),
        check_builds,
        "Dockerfile is not in the build context",
    ),
    (
        "misspelt HPO_ variable",
        _set("services.api.environment.HPO_DATABSE_URL", "sqlite:///x.db"),
        lambda c: check_hpo_environment(c, FILLED_ENV),
        "HPO_DATABSE_URL is not read",
    ),
    (
        "HPO_ variable of the wrong type",
        _set("services.api.environment.HPO_MAX_RUNNING_STUDIES", "many"),
        lambda c: check_hpo_environment(c, FILLED_ENV),
        "not valid Settings",
    ),
    (
        "two services on one host port",
        _set("services.ray-head.ports", ["8000:8265"]),
        check_ports,
        "host port 8000/tcp: both",
    ),
    (
        "an undocumented variable",
        _set("services.api.environment.HPO_STATE_DIR", "${STATE_DIR:-/state}"),
        lambda c: check_interpolation(c, read_env_file()),
        "${STATE_DIR} is used",
    ),
    (
        "a worker without a healthcheck that waits for nothing healthy",
        _both(
            _set("services.ray-worker-cpu.healthcheck", None),
            _set("services.ray-worker-cpu.depends_on", ["ray-head"]),
        ),
        check_healthchecks,
        "ray-worker-cpu: no healthcheck",
    ),
    (
        "waiting for a service that has no healthcheck",
        _set("services.ray-head.healthcheck", None),
        check_healthchecks,
        "waits for ray-head to be healthy, but it has no healthcheck",
    ),
    (
        "an API command the CLI does not have",
        _set("services.api.command", "hpo server --host 0.0.0.0"),
        check_commands,
        "`hpo server` is not a command",
    ),
    (
        "an option hpo serve does not take",
        _set("services.api.command", "hpo serve --workers 4"),
        check_commands,
        "No such option",
    ),
    (
        "a misspelt ray start option",
        _set("services.ray-worker-cpu.command", "ray start --adress=ray-head:6379 --block"),
        check_commands,
        "No such option",
    ),
    (
        "workers joining the wrong port",
        _set("services.ray-worker-gpu.command", "ray start --address=ray-head:6380 --block"),
        lambda c: check_cluster_wiring(c, FILLED_ENV),
        "joins ray-head:6380",
    ),
    (
        "the API pointed at the GCS port instead of the dashboard",
        _set("services.api.environment.HPO_RAY_ADDRESS", "http://ray-head:6379"),
        lambda c: check_cluster_wiring(c, FILLED_ENV),
        "the head's dashboard is on 8265",
    ),
    (
        "a token the API does not share",
        _set("services.api.environment.HPO_RAY_AUTH_TOKEN", "${API_TOKEN}"),
        lambda c: check_cluster_wiring(c, FILLED_ENV),
        "HPO_RAY_AUTH_TOKEN is not the cluster's",
    ),
    (
        "no worker in the default profiles",
        _set("services.ray-worker-cpu.profiles", ["cpu-only"]),
        lambda c: check_profiles(c, read_env_file()),
        "starts no Ray worker",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "check", "expected"),
    [pytest.param(m, c, e, id=name) for name, m, c, e in BROKEN],
)
def test_each_check_catches_a_broken_compose_file(
    compose: Compose,
    mutate: Callable[[Compose], None],
    check: Callable[[Compose], list[str]],
    expected: str,
) -> None:
    assert check(compose) == [], "the real compose file must pass the check first"
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


def test_dockerignore_check_catches_an_excluded_copy_source(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY service ./service\n")
    (tmp_path / "service").mkdir()
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".dockerignore").write_text("service\n")
    problems = check_builds({"services": {"api": {"build": "."}}}, tmp_path)
    assert any("copies service, but .dockerignore" in p for p in problems), problems
    assert any("does not keep .venv out" in p for p in problems), problems
