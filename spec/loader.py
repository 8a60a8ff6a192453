"""Load the spec files of this folder, bundle their cross-file ``$ref``s, and list operations.

A vendor spec (``openai_gateway.yaml``, ...) references shared pieces as
``shared.yaml#/components/schemas/ErrorResponse``. :func:`load_api` returns the vendor document
with every such piece copied into its own ``components`` and each reference rewritten to a local
``#/components/...`` one, so that jsonschema, schemathesis and openapi-spec-validator all see one
self-contained OpenAPI 3.1 document.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parent
SHARED_FILE = "shared.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecError(Exception):
    """A spec file is missing, unreadable or has a ``$ref`` that does not resolve."""


@dataclass(frozen=True)
class Operation:
    """One OpenAPI operation: ``method`` is lower case, ``spec`` the operation object."""

    api: str
    path: str
    method: str
    operation_id: str
    spec: Mapping[str, Any]
    security: tuple[Mapping[str, Any], ...] = ()
    """The effective security requirements: the operation's own, else the document's."""


def api_names() -> list[str]:
    """Names of the vendor specs (file stems), sorted; ``shared.yaml`` is not one."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml") if p.name != SHARED_FILE)


#: PyYAML's libyaml-backed safe loader where the wheel has libyaml (about 10x faster), else the pure one.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, by libyaml when available. Raises ``yaml.YAMLError`` as it does."""
    return yaml.load(text, Loader=_SAFE_LOADER)


@functools.cache
def _read(file: str) -> dict[str, Any]:
    path = SPEC_DIR / file
    if not path.is_file():
        raise SpecError(f"no spec file {path}")
    data = load_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a YAML mapping")
    return data


def _resolve_pointer(document: Mapping[str, Any], pointer: str, where: str) -> Any:
    node: Any = document
    for raw in pointer.lstrip("/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            raise SpecError(f"$ref {where}#{pointer} does not resolve")
        node = node[key]
    return node


@functools.cache
def _bundle(name: str) -> dict[str, Any]:
    root_file = f"{name}.yaml"
    root = copy.deepcopy(_read(root_file))
    own: dict[str, Any] = root.get("components", {})
    components: dict[str, dict[str, Any]] = {}  # imported pieces, by kind
    imported: set[tuple[str, str]] = set()

    def rewrite(node: Any, current_file: str) -> Any:
        if isinstance(node, list):
            return [rewrite(item, current_file) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: rewrite(value, current_file) for key, value in node.items() if key != "$ref"}
        ref = node.get("$ref")
        if isinstance(ref, str):
            file, _, pointer = ref.partition("#")
            file = file or current_file
            if file != root_file:
                parts = pointer.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "components":
                    raise SpecError(f"cross-file $ref {ref} in {current_file} must name a component")
                _, kind, component = parts
                if (file, pointer) not in imported:
                    imported.add((file, pointer))
                    section = components.setdefault(kind, {})
                    if component in section or component in own.get(kind, {}):
                        raise SpecError(f"component {kind}/{component} of {file} clashes in {root_file}")
                    section[component] = None  # reserve before recursing: refs may be cyclic
                    target = _resolve_pointer(_read(file), pointer, file)
                    section[component] = rewrite(copy.deepcopy(target), file)
            out["$ref"] = "#" + pointer
        return out

    bundled: dict[str, Any] = rewrite(root, root_file)
    bundled_components = bundled.setdefault("components", {})
    for kind, section in components.items():
        bundled_components.setdefault(kind, {}).update(section)
    return bundled


def load_api(name: str) -> dict[str, Any]:
    """The bundled OpenAPI document of vendor spec ``name`` (a deep copy: callers may mutate it).

    Raises :class:`SpecError` when the file is missing or a ``$ref`` does not resolve.
    """
    return copy.deepcopy(_bundle(name))


def operations(name: str) -> Iterator[Operation]:
    """Every operation of vendor spec ``name``, in file order."""
    document = _bundle(name)
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                op = item[method]
                security = tuple(op.get("security", document.get("security", [])))
                yield Operation(name, path, method, op["operationId"], op, security)


def find_operation(name: str, operation_id: str) -> Operation:
    """The operation of vendor spec ``name`` with ``operation_id``; raises KeyError if none."""
    for operation in operations(name):
        if operation.operation_id == operation_id:
            return operation
    raise KeyError(f"{name} has no operation {operation_id}")


def resolve(api: str, node: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` itself, or, if it is a ``{"$ref": "#/..."}``, the object it points to in ``api``'s bundle
    (followed until it is no reference). Raises :class:`SpecError` if a reference does not resolve.
    """
    seen: set[str] = set()
    while isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#"):
            raise SpecError(f"$ref {ref} in {api} is cyclic or not local")
        seen.add(ref)
        node = _resolve_pointer(_bundle(api), ref[1:], api)
    return node


def response_object(operation: Operation, status: int) -> Mapping[str, Any] | None:
    """The OpenAPI response object of ``operation``'s ``status``: the exact status, else its ``4XX``-style
    range, else ``default``, with a ``$ref`` resolved; None if undocumented.
    """
    responses = operation.spec.get("responses", {})
    response = responses.get(str(status)) or responses.get(f"{status // 100}XX") or responses.get("default")
    return None if response is None else resolve(operation.api, response)


def response_media(operation: Operation, status: int) -> dict[str, Any]:
    """``{media type: media type object}`` of ``operation``'s ``status`` response: the exact status,
    else its ``4XX``-style range, else ``default``, with a ``$ref`` response resolved; ``{}`` if undocumented.
    """
    response = response_object(operation, status)
    return {} if response is None else dict(response.get("content", {}))


def response_schema(operation: Operation, status: int, media_type: str = "application/json") -> dict[str, Any] | None:
    """The JSON Schema of ``operation``'s ``status`` response for ``media_type``; None if undocumented."""
    content = response_media(operation, status).get(media_type)
    return None if content is None else dict(content.get("schema", {}))


def request_body_schema(operation: Operation, media_type: str = "application/json") -> dict[str, Any] | None:
    """The JSON Schema of ``operation``'s request body for ``media_type``, or None if it has none."""
    body = operation.spec.get("requestBody")
    if body is None:
        return None
    content = body.get("content", {}).get(media_type)
    return None if content is None else dict(content.get("schema", {}))


@overload
def schema_validator(api: str, schema: Mapping[str, Any]) -> Draft202012Validator: ...
@overload
def schema_validator(api: str, schema: Mapping[str, Any], cls: Any) -> Any: ...
def schema_validator(api: str, schema: Mapping[str, Any], cls: Any = Draft202012Validator) -> Any:
    """A JSON Schema 2020-12 validator for ``schema``, whose ``#/components/...`` refs resolve in ``api``:
    an instance of ``cls`` (``Draft202012Validator`` or a class ``jsonschema.validators.extend`` made of it).

    Build it once (start-up, collection time): compiling is the expensive part.
    """
    document = _bundle(api)
    uri = f"urn:spec:{api}"
    registry: Registry[Any] = Registry().with_resource(uri, DRAFT202012.create_resource(document))
    wrapped = {"$id": f"{uri}:subschema", "$defs": {}, "allOf": [_absolutise(schema, uri)]}
    return cls(wrapped, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _absolutise(node: Any, uri: str) -> Any:
    """Rewrite local ``#/...`` refs of a schema fragment to point into the document at ``uri``."""
    if isinstance(node, list):
        return [_absolutise(item, uri) for item in node]
    if isinstance(node, dict):
        out = {key: _absolutise(value, uri) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = uri + ref
        return out
    return node
