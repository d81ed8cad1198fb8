#!/usr/bin/env python3
"""Generate the official action catalogs (ECS 2014-05-26, VPC 2016-04-28) from the official Tea SDKs.

    PYTHONPATH=src python scripts/gen_api_catalog.py           # rewrite src/nubes/catalog/data/api/*.json
    PYTHONPATH=src python scripts/gen_api_catalog.py --check   # exit 1 if a committed file is stale

The sources are the SDK packages of the `test` extra, alibabacloud_ecs20140526 and
alibabacloud_vpc20160428, installed in the venv. Nothing is fetched from the network, so the catalog
is exactly as current as the installed SDK versions.

How it reads the SDK, and why this way:

- client.py is parsed with `ast`, never imported or run. Each action has one synchronous
  `<name>_with_options` method (the name is not a reliable key: the code generator writes
  `enable_network_interface_qo_swith_options`); it is recognised by the `Params(action=...)` call it
  builds, which also gives the method and style. The wire parameter names are the string keys of
  the `query[...]`, `body[...]` and `body_flat[...]` assignments, each fed from one attribute of
  the request model; `query = Utils.query(request.to_map())` means every field of the model. A
  parameter first "shrunk" with `Utils.array_to_string_with_specified_style(tmp_req.x, 'X', style)`
  travels as one encoded string (style json or simple). The public method that calls the
  `_with_options` one is the `sdk_method`. Reading the source statically is what the client would
  do at run time without a server, a signer or a request to fake; any statement of a kind not
  understood here raises, so a new SDK shape is noticed instead of silently dropped.
- models are imported and introspected. A field's type comes from the model's `__init__`
  annotation (`str`, `int`, `List[main_models.X]`, ...); its wire name comes from calling `to_map`
  on an instance whose every field holds a probe value and seeing under which key each probe comes
  back. That is the SDK's own serialisation, so renamings such as `ipv_6address` -> `Ipv6Address`
  or `disk_ids` -> `diskIds` need no guessing (a regex over the source would have to re-implement
  the generator's naming rules, and they are not regular).

Output per action (the shape of the catalogs this replaces, minus their hand-written "group"):
method, style, request_location, request (flat wire names: `SystemDisk.Size`, `Tag.N.Key`,
`InstanceIds`), request_types, response (top-level keys), response_shape (nested: {} for a
model, [item] for a list), sdk_method; plus, where an action has them, body_params (the names sent
in the form body), encoded_params (the shrunk parameters with their style and shape) and
json_array_string_params (string parameters whose SDK doc comment says they hold a JSON array,
like DescribeInstances' InstanceIds: the one field read from prose, as the SDK types them `str`).
The response shape stops at MAX_SHAPE_DEPTH (see there).

Against the hand-made catalogs it replaces (shared/api/*_api_catalog.json, same SDK versions) the
output is identical but for the "group" field, dropped, and one response shape: the catalogs
cut DescribeInstancesFullStatus' ExtendedAttribute.InactiveDisks one level deeper than every
other model at that depth, which no rule over the SDK's types reproduces.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import linecache
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "src" / "nubes" / "catalog" / "data" / "api"

# product -> (SDK package, its distribution name)
PRODUCTS = {
    "ecs": ("alibabacloud_ecs20140526", "alibabacloud-ecs20140526"),
    "vpc": ("alibabacloud_vpc20160428", "alibabacloud-vpc20160428"),
}

SCALARS = {"str": "string", "int": "integer", "bool": "boolean", "float": "number", "Any": "any"}

# Response shapes stop at this JSON nesting depth (the body's own fields are at depth 1): a model or
# a list that deep is written {} or []. The catalogs this replaces were cut there, and it keeps the
# few very deep answers (DescribeInstances' prefix sets, price rules) small; nubes reads only the
# top of response shapes.
MAX_SHAPE_DEPTH = 8

# The variables of a `_with_options` method that collect parameters, and where they travel.
LOCATIONS = {"query": "query", "body": "body", "body_flat": "body"}


class SdkShapeError(Exception):
    """The SDK source has a shape this generator does not understand."""


# --- model types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    name: str  # catalog type: string, integer, boolean, number, any


@dataclass(frozen=True)
class ListOf:
    item: FieldType


@dataclass(frozen=True)
class DictOf:
    value: FieldType


@dataclass(frozen=True)
class Model:
    cls: type


FieldType = Scalar | ListOf | DictOf | Model


def parse_annotation(text: str, models: ModuleType) -> FieldType:
    """A field type from its annotation, e.g. 'List[main_models.RunInstancesRequestTag]'."""
    return _annotation(ast.parse(text, mode="eval").body, models, text)


def _annotation(node: ast.expr, models: ModuleType, text: str) -> FieldType:
    if isinstance(node, ast.Name) and node.id in SCALARS:
        return Scalar(SCALARS[node.id])
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "main_models"
    ):
        return Model(getattr(models, node.attr))
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "List":
            return ListOf(_annotation(node.slice, models, text))
        if node.value.id == "Dict" and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
            key = _annotation(node.slice.elts[0], models, text)
            if key != Scalar("string"):
                raise SdkShapeError(f"dict with non-string keys: {text}")
            return DictOf(_annotation(node.slice.elts[1], models, text))
    raise SdkShapeError(f"unknown annotation {text!r}")


class _Probe:
    """Stands in for a field's value so that `to_map` reveals the field's wire name."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def to_map(self) -> _Probe:
        return self


def _probe_value(attr: str, ftype: FieldType) -> Any:
    probe = _Probe(attr)
    if isinstance(ftype, ListOf):
        return [probe]
    if isinstance(ftype, DictOf):
        return {"key": probe}
    return probe


def _probes_in(value: Any) -> Iterator[_Probe]:
    if isinstance(value, _Probe):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _probes_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _probes_in(item)


_FIELDS: dict[type, list[tuple[str, str, FieldType]]] = {}


def model_fields(cls: type, models: ModuleType) -> list[tuple[str, str, FieldType]]:
    """(wire name, attribute, type) of each field of a model, in declaration order."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    params = list(inspect.signature(cls).parameters.values())  # those of __init__, without self
    types = {p.name: parse_annotation(str(p.annotation), models) for p in params}
    instance = cls()
    for attr, ftype in types.items():
        setattr(instance, attr, _probe_value(attr, ftype))
    wire_of: dict[str, str] = {}
    for key, value in instance.to_map().items():
        for probe in _probes_in(value):
            if wire_of.setdefault(probe.attr, key) != key:
                raise SdkShapeError(f"{cls.__name__}.{probe.attr} is written under two names")
    missing = set(types) - set(wire_of)
    if missing:
        raise SdkShapeError(f"{cls.__name__}.to_map does not write {sorted(missing)}")
    fields = [(wire_of[attr], attr, ftype) for attr, ftype in types.items()]
    _FIELDS[cls] = fields
    return fields


def field_type(cls: type, attr: str, models: ModuleType) -> FieldType:
    for _wire, name, ftype in model_fields(cls, models):
        if name == attr:
            return ftype
    raise SdkShapeError(f"{cls.__name__} has no field {attr}")


def flat_names(prefix: str, ftype: FieldType, models: ModuleType) -> Iterator[tuple[str, str]]:
    """The flat wire names (and their types) under which a request parameter travels."""
    if isinstance(ftype, Scalar):
        yield prefix, ftype.name
    elif isinstance(ftype, ListOf):
        yield from flat_names(f"{prefix}.N", ftype.item, models)
    elif isinstance(ftype, Model):
        for wire, _attr, sub in model_fields(ftype.cls, models):
            yield from flat_names(f"{prefix}.{wire}", sub, models)
    else:  # the SDK only sends maps shrunk to one string (encoded_params)
        raise SdkShapeError(f"{prefix}: a map sent unencoded")


def shape(ftype: FieldType, models: ModuleType, depth: int = 0) -> Any:
    """The nested JSON shape of a value at a nesting depth: a type name, {key: shape} or [item shape]."""
    if isinstance(ftype, Scalar):
        return ftype.name
    if isinstance(ftype, ListOf):
        return [] if depth >= MAX_SHAPE_DEPTH else [shape(ftype.item, models, depth + 1)]
    if isinstance(ftype, DictOf):
        return {"{key}": shape(ftype.value, models, depth + 1)}
    if depth >= MAX_SHAPE_DEPTH:
        return {}
    return {wire: shape(sub, models, depth + 1) for wire, _attr, sub in model_fields(ftype.cls, models)}


def says_json_array(cls: type, attr: str) -> bool:
    """Whether the SDK documents a string field as holding a JSON array (InstanceIds='["i-1","i-2"]').

    The doc comment above `self.<attr> = <attr>` in the model's __init__ is the only place the
    SDK says so: the type is plain `str` and the value is sent as is."""
    code = getattr(cls, "__init__").__code__  # (mypy refuses cls.__init__ on a `type`)
    lines = linecache.getlines(code.co_filename)  # (inspect.getsource is slower: it searches sys.modules)
    assignment = f"self.{attr} = {attr}"
    index = next(i for i in range(code.co_firstlineno, len(lines)) if lines[i].strip() == assignment)
    comment = []
    for line in reversed(lines[code.co_firstlineno : index]):
        if not line.strip().startswith("#"):
            break
        comment.append(line)
    return "json array" in " ".join(comment).lower()


# --- client.py -------------------------------------------------------------------------------------


@dataclass
class Operation:
    """What one `_with_options` method of the client says about its action."""

    action: str
    method: str
    style: str
    sdk_method: str
    request_model: type | None  # the model the parameters are read from (the shrink one, if any)
    response_model: type
    params: list[tuple[str, str, str]]  # (location, wire name, attribute of request_model)
    whole_model_in_query: bool  # query = Utils.query(request.to_map())
    shrunk: dict[str, tuple[str, str, FieldType]]  # shrink attribute -> (wire name, style, unshrunk type)
    locations: list[str]  # from the OpenApiRequest(query=..., body=...) keywords


def _const(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise SdkShapeError(f"expected a string constant, found {ast.unparse(node)}")


def _model_ref(node: ast.expr | None, models: ModuleType) -> type | None:
    """main_models.X (an annotation, or the callee of main_models.X()) as a class."""
    if isinstance(node, ast.Call):
        node = node.func
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "main_models"
    ):
        cls: type = getattr(models, node.attr)
        return cls
    return None


def _is_call_to(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name


def read_operation(func: ast.FunctionDef, sdk_method: str, models: ModuleType) -> Operation:
    keywords: dict[str, str] = {}
    request_model: type | None = None
    response_model: type | None = None
    params: list[tuple[str, str, str]] = []
    shrunk: dict[str, tuple[str, str, FieldType]] = {}
    whole = False
    locations: list[str] = []
    arg_models = {a.arg: _model_ref(a.annotation, models) for a in func.args.args}
    unshrunk = arg_models.get("tmp_req")
    request_model = arg_models.get("request")
    for node in ast.walk(func):
        if _is_call_to(node, "Params"):  # type: ignore[arg-type]
            assert isinstance(node, ast.Call)
            keywords = {k.arg: _const(k.value) for k in node.keywords if k.arg}
        elif _is_call_to(node, "OpenApiRequest"):  # type: ignore[arg-type]
            assert isinstance(node, ast.Call)
            locations = sorted(k.arg for k in node.keywords if k.arg)
        elif _is_call_to(node, "from_map"):  # type: ignore[arg-type]
            assert isinstance(node, ast.Call)
            response_model = _model_ref(node.args[0], models)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and target.id == "request":
                request_model = _model_ref(value, models)  # the shrink request
            elif isinstance(target, ast.Name) and target.id == "query" and _is_call_to(value, "query"):
                whole = True  # query = Utils.query(request.to_map())
            elif isinstance(target, ast.Attribute) and target.attr.endswith("_shrink"):
                if not (_is_call_to(value, "array_to_string_with_specified_style") and unshrunk is not None):
                    raise SdkShapeError(f"{func.name}: {ast.unparse(node)}")
                assert isinstance(value, ast.Call)
                source, wire, style = value.args
                assert isinstance(source, ast.Attribute)
                shrunk[target.attr] = (_const(wire), _const(style), field_type(unshrunk, source.attr, models))
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                location = LOCATIONS.get(target.value.id)
                if location is None:
                    continue
                if not (
                    isinstance(value, ast.Attribute)
                    and isinstance(value.value, ast.Name)
                    and value.value.id == "request"
                ):
                    raise SdkShapeError(f"{func.name}: {ast.unparse(node)}")
                params.append((location, _const(target.slice), value.attr))
    if response_model is None or "action" not in keywords:
        raise SdkShapeError(f"{func.name}: no action or no response model")
    return Operation(
        action=keywords["action"],
        method=keywords["method"],
        style=keywords["style"],
        sdk_method=sdk_method,
        request_model=request_model,
        response_model=response_model,
        params=params,
        whole_model_in_query=whole,
        shrunk=shrunk,
        # the SDK builds no query/body for an action without parameters; RPC still sends Action & co.
        # in the query
        locations=["body" if loc == "body" else "query" for loc in locations] or ["query"],
    )


def read_client(package: str, models: ModuleType) -> list[Operation]:
    spec = importlib.util.find_spec(f"{package}.client")
    if spec is None or spec.origin is None:
        raise SdkShapeError(f"{package}.client is not installed")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    client = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Client")
    methods = [f for f in client.body if isinstance(f, ast.FunctionDef)]  # sync ones only
    # public method -> the _with_options one it delegates to ("return self.x_with_options(...)")
    public: dict[str, str] = {}
    for func in methods:
        last = func.body[-1]
        if (
            isinstance(last, ast.Return)
            and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Attribute)
            and isinstance(last.value.func.value, ast.Name)
            and last.value.func.value.id == "self"
            and last.value.func.attr != "call_api"
        ):
            public[last.value.func.attr] = func.name
    operations = []
    for func in methods:
        if any(_is_call_to(n, "Params") for n in ast.walk(func) if isinstance(n, ast.expr)):
            if func.name not in public:
                raise SdkShapeError(f"no public method calls {func.name}")
            operations.append(read_operation(func, public[func.name], models))
    return operations


# --- the catalog -----------------------------------------------------------------------------------


def wire_order(name: str) -> tuple[str, str]:
    """The order of request names: case-insensitive (autoSnapshotPolicyId, diskIds, OwnerId, regionId)."""
    return name.lower(), name


def catalog_entry(op: Operation, models: ModuleType) -> dict[str, Any]:
    types: dict[str, str] = {}
    body: list[str] = []
    encoded: dict[str, Any] = {}
    params = list(op.params)
    if op.whole_model_in_query:
        assert op.request_model is not None
        params += [("query", wire, attr) for wire, attr, _t in model_fields(op.request_model, models)]
    json_arrays: list[str] = []
    for location, wire, attr in params:
        assert op.request_model is not None
        if attr in op.shrunk:
            shrunk_wire, style, ftype = op.shrunk[attr]
            if shrunk_wire != wire:
                raise SdkShapeError(f"{op.action}: {attr} shrunk as {shrunk_wire}, sent as {wire}")
            names = [(wire, style)]
            encoded[wire] = {"style": style, "shape": "simple" if style == "simple" else shape(ftype, models)}
        else:
            ftype = field_type(op.request_model, attr, models)
            names = list(flat_names(wire, ftype, models))
            if ftype == Scalar("string") and says_json_array(op.request_model, attr):
                json_arrays.append(wire)
        for name, kind in names:
            if types.setdefault(name, kind) != kind:
                raise SdkShapeError(f"{op.action}: {name} has two types")
            if location == "body":
                body.append(name)
    request = sorted(types, key=wire_order)
    body_model = field_type(op.response_model, "body", models)
    response_shape = shape(body_model, models)
    entry: dict[str, Any] = {
        "method": op.method,
        "style": op.style,
        "request_location": sorted(set(op.locations)),
        "request": request,
        "request_types": {name: types[name] for name in request},
    }
    if body:
        entry["body_params"] = sorted(body, key=wire_order)
    if encoded:
        entry["encoded_params"] = {name: encoded[name] for name in sorted(encoded, key=wire_order)}
    if json_arrays:
        entry["json_array_string_params"] = sorted(json_arrays, key=wire_order)
    entry["response"] = sorted(response_shape)  # (case-sensitive here: VRouterId before VpcId)
    entry["response_shape"] = response_shape
    entry["sdk_method"] = op.sdk_method
    return entry


def generate(product: str) -> dict[str, Any]:
    """The catalog of one product, from the installed SDK."""
    package, _distribution = PRODUCTS[product]
    models = importlib.import_module(f"{package}.models")
    actions = {op.action: catalog_entry(op, models) for op in read_client(package, models)}
    return {name: actions[name] for name in sorted(actions)}


def render(catalog: dict[str, Any]) -> str:
    """The committed text: one value a line, so that an SDK upgrade diffs action by action."""
    return json.dumps(catalog, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output directory (default {OUT_DIR})")
    parser.add_argument("products", nargs="*", help=f"default: all of {', '.join(sorted(PRODUCTS))}")
    args = parser.parse_args(argv)
    unknown = set(args.products) - set(PRODUCTS)
    if unknown:
        parser.error(f"unknown products {sorted(unknown)}")
    stale = []
    for product in args.products or sorted(PRODUCTS):
        text = render(generate(product))
        path: Path = args.out / f"{product}.json"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"{path}: {len(json.loads(text))} actions")
    if stale:
        print("stale (run scripts/gen_api_catalog.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
