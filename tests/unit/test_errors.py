"""nubes.errors: one constructor per ECS code, named by the rule its docstring states."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from nubes import errors


def _snake(code: str) -> str:
    text = code.replace("VSwitch", "Vswitch")
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return text.replace(".", "_").lower()


CONSTRUCTORS = [
    (name, function)
    for name, function in vars(errors).items()
    if inspect.isfunction(function)
    and function.__module__.startswith(f"{errors.__name__}.")
    and not name.startswith("_")
]


def _call(function: object) -> errors.ApiError:
    """The constructor called with a placeholder for each argument it requires."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    required = {
        p.name: (0 if p.annotation in (int, "int") else "Part")
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
    }
    positional = [
        v for k, v in required.items() if signature.parameters[k].kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    keywords = {
        k: v for k, v in required.items() if signature.parameters[k].kind is inspect.Parameter.KEYWORD_ONLY
    }
    error = function(*positional, **keywords)  # type: ignore[operator]
    assert isinstance(error, errors.ApiError)
    return error


@pytest.mark.parametrize(("name", "function"), CONSTRUCTORS, ids=[n for n, _ in CONSTRUCTORS])
def test_a_constructor_is_named_for_its_code(name: str, function: object) -> None:
    error = _call(function)
    if "Part" in error.code:  # a code built at run time: named for the code without the part
        assert _snake(error.code.replace("Part", "")).replace("__", "_").strip("_") == name
    else:
        assert _snake(error.code) == name
    assert error.message
    assert error.http_status in (400, 403, 404, 405, 413, 500, 503)


def test_codes_are_not_repeated() -> None:
    codes = [_call(f).code for _, f in CONSTRUCTORS]
    fixed = [c for c in codes if "Part" not in c]
    assert len(fixed) == len(set(fixed))


def test_the_package_imports_nothing_from_the_rest_of_nubes() -> None:
    for path in Path(errors.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        outside = [
            m
            for m in imported
            if (m == "nubes" or m.startswith("nubes.")) and not m.startswith("nubes.errors")
        ]
        assert not outside, f"{path.name} imports {outside}"


def test_no_error_is_built_by_hand_outside_the_package() -> None:
    root = Path(errors.__file__).parents[3]
    package = Path(errors.__file__).parent
    sites = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("src", "tests", "bench", "scripts")
        for path in (root / folder).rglob("*.py")
        if package not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "ApiError(" in line and '"ApiError(" in line' not in line
    ]
    assert not sites, f"build errors with their named constructor in nubes.errors: {sites}"


def test_the_statuses_and_defaults_the_sites_rely_on() -> None:
    assert errors.throttling(3).retry_after == 3
    assert errors.missing_parameter("Version", common=True).code == "MissingParameter"
    assert errors.missing_parameter("ImageId").code == "MissingParameter.ImageId"
    assert errors.missing_parameter(message="Give one.").code == "MissingParameter"
    assert errors.dependency_violation("VSwitch", message="m").code == "DependencyViolation.VSwitch"
    assert errors.dependency_violation(message="m", http_status=403).http_status == 403
    assert (
        errors.invalid_id_not_found("Vpc", "vpc-1").message == "The specified VpcId 'vpc-1' does not exist."
    )
    assert errors.incorrect_instance_status("m").http_status == 403
    assert errors.signature_does_not_match("GET&%2F&").message.endswith("string to sign is:GET&%2F&")
    assert errors.invalid_parameter("Status", "Valid values: a.").message == (
        'The specified parameter "Status" is not valid. Valid values: a.'
    )
