"""Nothing in a spec reaches a shell, ``eval``, remote code or pickle."""

from __future__ import annotations

import ast
import shlex

import pytest

from service.dispatcher import job_entrypoint
from service.local_server import REPO

PACKAGES = ("service", "workers", "search_spaces")


def test_the_job_entrypoint_quotes_every_word() -> None:
    python = "/opt/my envs/it's here/bin/python"
    entrypoint = job_entrypoint(python, "abc123XYZ")
    assert shlex.split(entrypoint) == [
        python,
        "-m",
        "workers.run_study",
        "--study-id",
        "abc123XYZ",
    ]


@pytest.mark.parametrize(
    "study_id", ["", "abc;id", "$(id)", "a b", "a\nb", "١٢٣", "ß", "x" * 65, "../x", "-h"]
)
def test_the_job_entrypoint_takes_only_ascii_alphanumeric_ids(study_id: str) -> None:
    with pytest.raises(ValueError, match="ASCII letters and digits"):
        job_entrypoint("python", study_id)


def _calls() -> list[tuple[str, ast.Call]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [
                (f"{path.relative_to(REPO)}:{node.lineno}", node)
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
            ]
    return found


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return "absent"


def test_every_from_pretrained_refuses_remote_code() -> None:
    calls = [(where, call) for where, call in _calls() if _name(call) == "from_pretrained"]
    assert calls, "expected the model loaders in workers/models.py"
    loose = [where for where, call in calls if _keyword(call, "trust_remote_code") is not False]
    assert not loose, f"from_pretrained without trust_remote_code=False: {loose}"


def test_no_eval_exec_unsafe_yaml_or_shell() -> None:
    bad = []
    for where, call in _calls():
        name = _name(call)
        if isinstance(call.func, ast.Name) and name in ("eval", "exec", "compile"):
            bad.append(f"{where}: {name}()")
        if name in ("unsafe_load", "full_load", "system", "popen") or (
            name == "load"
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id in ("pickle", "cloudpickle", "marshal")
        ):
            bad.append(f"{where}: {name}()")
        if _keyword(call, "shell") is True:
            bad.append(f"{where}: shell=True")
        if name == "load" and _keyword(call, "weights_only") is False:
            bad.append(f"{where}: torch.load(weights_only=False)")
    assert not bad, bad


def test_yaml_is_only_read_with_the_safe_loaders() -> None:
    files = [file for package in PACKAGES for file in sorted((REPO / package).rglob("*.py"))]
    for file in files:
        text = file.read_text()
        for loader in ("yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader"):
            assert loader not in text, f"{file}: {loader}"
