"""Request parameters, declared once per action: wire name, type, required, default, limits.

Validation and the action's documentation both come from these declarations. Values
arrive as flat strings (`Tag.1.Key=env`, `SystemDisk.Size=40`, `InstanceIds='["i-1"]'`)
and leave as Python values keyed by their wire names (`{"Tag": [{"Key": "env"}]}`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nubes import errors
from nubes.domain.jsonlists import decode_json_list, valid_text

_INTEGER = re.compile(r"^[+-]?\d{1,19}$")
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INDEXED = re.compile(r"^(\d{1,6})(?:\.(.+))?$")


@dataclass(frozen=True)
class Param:
    """One wire parameter. `kind` is string, integer, number, boolean, json, list or struct.

    list: `Name.N` (items parsed as `item`), `Name.N.Field` when item is a struct; a JSON array
    string in `Name` itself is accepted too when `json_array` is set.
    struct: `Name.Field` with `fields`."""

    name: str
    kind: str = "string"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    item: Param | None = None
    fields: tuple[Param, ...] = ()
    max_items: int | None = None
    json_array: bool = False
    description: str = ""
    # Values nubes does not do yet (parsed values: True, "PrePaid"): refused with
    # InvalidParameter.NotSupported naming the parameter and `unsupported_because`, never dropped.
    unsupported_values: tuple[Any, ...] = ()
    unsupported_from: float | None = None  # numbers from this one up are refused likewise
    unsupported_because: str = ""
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_regex", re.compile(self.pattern))


def String(name: str, **kw: Any) -> Param:  # noqa: N802 - reads as a type in declarations
    return Param(name, "string", **kw)


def Integer(name: str, **kw: Any) -> Param:  # noqa: N802
    return Param(name, "integer", **kw)


def Number(name: str, **kw: Any) -> Param:  # noqa: N802
    return Param(name, "number", **kw)


def Boolean(name: str, **kw: Any) -> Param:  # noqa: N802
    return Param(name, "boolean", **kw)


def StringList(name: str, **kw: Any) -> Param:  # noqa: N802
    """`Name.N` strings (1-based), or a JSON array in `Name` when json_array=True."""
    item = Param(
        name, "string", max_length=kw.pop("item_max_length", None), choices=kw.pop("item_choices", None)
    )
    return Param(name, "list", item=item, **kw)


def StructList(name: str, fields: Sequence[Param], **kw: Any) -> Param:  # noqa: N802
    """`Name.N.Field` (1-based N)."""
    return Param(name, "list", item=Param(name, "struct", fields=tuple(fields)), **kw)


def Struct(name: str, fields: Sequence[Param], **kw: Any) -> Param:  # noqa: N802
    return Param(name, "struct", fields=tuple(fields), **kw)


@dataclass(frozen=True)
class WireName:
    """One flat wire name a declaration accepts (`DataDisk.N.Size`, `Tag.N.Key`), and the
    alternative a JSON-array list may use (`InstanceIds` beside `InstanceIds.N`)."""

    name: str
    kind: str
    json_alternative: str | None = None


def wire_names(param: Param, prefix: str = "") -> Iterator[WireName]:
    name = prefix + param.name
    if param.kind == "list":
        assert param.item is not None, f"list {name} has no item declaration"
        if param.item.kind == "struct":
            for field_ in param.item.fields:
                yield from wire_names(field_, f"{name}.N.")
        else:
            yield WireName(f"{name}.N", param.item.kind, name if param.json_array else None)
    elif param.kind == "struct":
        for field_ in param.fields:
            yield from wire_names(field_, f"{name}.")
    else:
        yield WireName(name, param.kind)


# ---- parsing -----------------------------------------------------------------------------


def parse_params(specs: Sequence[Param], raw: Mapping[str, str]) -> dict[str, Any]:
    """Validate `raw` wire parameters against `specs`; unknown names are ignored."""
    tree = _nest(raw)
    return {spec.name: _parse(spec, spec.name, tree.get(spec.name)) for spec in specs}


def _nest(raw: Mapping[str, str]) -> dict[str, Any]:
    """Turn dotted names into a tree: {'Tag': {'.': None, '1': {'Key': 'a'}}}.

    A node holds its own value under the key '' when the name also appears undotted."""
    root: dict[str, Any] = {}
    for name, value in raw.items():
        node = root
        parts = name.split(".")
        if "" in parts:
            continue  # "A..B" or "A." names no declared parameter: tolerated like any unknown name
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {"": child} if child is not None else {}
                node[part] = child
            node = child
        last = parts[-1]
        existing = node.get(last)
        if isinstance(existing, dict):
            existing[""] = value
        else:
            node[last] = value
    return root


def _parse(spec: Param, path: str, node: Any) -> Any:
    value: Any
    if spec.kind == "list":
        value = _parse_list(spec, path, node)
    elif spec.kind == "struct":
        value = _parse_struct(spec, path, node)
    else:
        text = node.get("") if isinstance(node, dict) else node
        value = None if text is None else _parse_scalar(spec, path, text)
    if value is None or value in ([], {}):
        if spec.required:
            raise errors.missing_parameter(path)
        return spec.default if value is None else value
    if _unsupported(spec, value):
        raise errors.invalid_parameter_not_supported(
            path, f"the value {_wire(value)} is not supported yet ({spec.unsupported_because})."
        )
    return value


def _unsupported(spec: Param, value: Any) -> bool:
    if spec.unsupported_from is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value >= spec.unsupported_from
    return value in spec.unsupported_values


def _wire(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_struct(spec: Param, path: str, node: Any) -> dict[str, Any] | None:
    if node is None:
        return None
    if not isinstance(node, dict):
        raise errors.invalid_parameter(
            path, f"It must be given as fields, for example {path}.{_first_field(spec)}=..."
        )
    parsed = {f.name: _parse(f, f"{path}.{f.name}", node.get(f.name)) for f in spec.fields}
    if all(v is None for v in parsed.values()):
        return None
    return parsed


def _first_field(spec: Param) -> str:
    return spec.fields[0].name if spec.fields else "Field"


def _parse_list(spec: Param, path: str, node: Any) -> list[Any] | None:
    assert spec.item is not None
    if node is None:
        return None
    if isinstance(node, str):
        if not spec.json_array:
            raise errors.invalid_parameter(path, f"Give its items as {path}.1, {path}.2, ...")
        return _parse_json_array(spec, path, node)
    items: dict[int, Any] = {}
    for key, child in node.items():
        if key == "":
            if isinstance(child, str) and spec.json_array:
                return _parse_json_array(spec, path, child)
            continue
        match = _INDEXED.match(key)
        index = int(match.group(1)) if match else 0
        if index < 1:
            raise errors.invalid_parameter(f"{path}.{key}", "List indexes start at 1.")
        items[index] = child
    if spec.max_items is not None and len(items) > spec.max_items:
        raise errors.invalid_parameter(path, f"At most {spec.max_items} items are allowed; got {len(items)}.")
    if spec.max_items is not None and items and max(items) > spec.max_items:
        raise errors.invalid_parameter(
            f"{path}.{max(items)}", f"The index exceeds the limit of {spec.max_items}."
        )
    result = []
    for index in sorted(items):
        value = _parse(spec.item, f"{path}.{index}", items[index])
        if value is not None:
            result.append(value)
    return result


def _parse_json_array(spec: Param, path: str, text: str) -> list[Any]:
    assert spec.item is not None
    if text.strip() == "":
        return []
    decoded = decode_json_list(text)
    if decoded is None:
        raise errors.invalid_parameter(path, 'It must be a JSON array of strings, for example ["a", "b"].')
    if spec.max_items is not None and len(decoded) > spec.max_items:
        raise errors.invalid_parameter(
            path, f"At most {spec.max_items} items are allowed; got {len(decoded)}."
        )
    out = []
    for i, element in enumerate(decoded, start=1):
        if not isinstance(element, (str, int)) or isinstance(element, bool):
            raise errors.invalid_parameter(path, "Each element of the JSON array must be a string.")
        value = _parse_scalar(spec.item, f"{path}[{i}]", str(element))
        if value is None:
            raise errors.invalid_parameter(path, "The elements of the JSON array must not be empty.")
        out.append(value)
    return out


def _parse_scalar(spec: Param, path: str, text: str) -> Any:
    if not valid_text(text):
        raise errors.invalid_parameter(
            path, "It is not valid text (NUL characters and lone surrogates are refused)."
        )
    if spec.kind == "string":
        return _check_string(spec, path, text)
    if text == "" and not spec.required:
        return None
    if spec.kind == "integer":
        if not _INTEGER.match(text.strip()):
            raise errors.invalid_parameter(path, f"It must be an integer; got {text[:64]!r}.")
        return _check_range(spec, path, int(text.strip()))
    if spec.kind == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise errors.invalid_parameter(path, f"It must be a number; got {text[:64]!r}.")
        return _check_range(spec, path, number)
    if spec.kind == "boolean":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise errors.invalid_parameter(path, f"It must be true or false; got {text[:64]!r}.")
    if spec.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            raise errors.invalid_parameter(path, "It must be a JSON document.") from None
    raise errors.internal_error(f"Unknown parameter kind {spec.kind}")


def _check_string(spec: Param, path: str, text: str) -> str | None:
    if text == "":
        return None  # an empty value counts as absent, as in ECS
    if spec.max_length is not None and len(text) > spec.max_length:
        raise errors.invalid_parameter(path, f"It must be at most {spec.max_length} characters long.")
    if spec.choices is not None and text not in spec.choices:
        allowed = ", ".join(spec.choices)
        raise errors.invalid_parameter(path, f"Valid values: {allowed}; got {text[:64]!r}.")
    if spec._regex is not None and not spec._regex.fullmatch(text):
        raise errors.invalid_parameter(path, f"It does not have the expected format; got {text[:64]!r}.")
    return text


def _check_range(spec: Param, path: str, value: float) -> Any:
    if spec.minimum is not None and value < spec.minimum:
        raise errors.invalid_parameter(path, f"It must be at least {_fmt(spec.minimum)}; got {_fmt(value)}.")
    if spec.maximum is not None and value > spec.maximum:
        raise errors.invalid_parameter(path, f"It must be at most {_fmt(spec.maximum)}; got {_fmt(value)}.")
    return value


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
