"""The spec files are valid OpenAPI 3.1, every operation is traceable and complete, every example is valid.

Complements ``test_spec_coverage.py``, which checks that the specs say what the seed documents say;
these tests check that what they say is well formed and self-consistent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from spec import SPEC_DIR, Operation, api_names, load_api, operations, resolve, response_media, schema_validator
from spec.extensions import providers
from spec.fields import find_field, request_schemas
from spec.vocabulary import SEED_DOCUMENTS, VOCABULARY, vocabulary_problems

FILES = sorted(path.name for path in SPEC_DIR.glob("*.yaml"))
APIS = api_names()
OPERATIONS = [operation for api in APIS for operation in operations(api)]


def _op_id(operation: Operation) -> str:
    return f"{operation.api}.{operation.operation_id}"


def _raw(file: str) -> dict[str, Any]:
    data = yaml.safe_load((SPEC_DIR / file).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_three_vendor_specs_exist() -> None:
    assert APIS == ["credits_api", "multi_protocol", "openai_gateway"]


@pytest.mark.parametrize("file", FILES)
def test_raw_file_is_valid_openapi(file: str) -> None:
    path = SPEC_DIR / file
    validate(_raw(file), base_uri=path.as_uri())


@pytest.mark.parametrize("api", APIS)
def test_bundled_document_is_valid_openapi(api: str) -> None:
    validate(load_api(api))


@pytest.mark.parametrize("file", FILES)
def test_extensions_follow_the_vocabulary(file: str) -> None:
    assert vocabulary_problems(_raw(file)) == []


def test_shared_description_defines_every_extension() -> None:
    description = _raw("shared.yaml")["info"]["description"]
    missing = [key for key in VOCABULARY if f"`{key}" not in description]
    assert missing == [], f"shared.yaml's description does not define {missing}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=_op_id)
def test_operation_is_traceable_to_a_seed(operation: Operation) -> None:
    assert operation.operation_id
    source = operation.spec.get("x-source")
    assert isinstance(source, Mapping), f"{_op_id(operation)} has no x-source"
    assert source.get("document") in SEED_DOCUMENTS
    assert source.get("section")


def test_an_operation_id_names_one_route() -> None:
    """The mock registers handlers by operationId: one id may serve one (method, path) only."""
    routes: dict[str, set[tuple[str, str]]] = {}
    for operation in OPERATIONS:
        routes.setdefault(operation.operation_id, set()).add((operation.method, operation.path))
    assert {name: sorted(found) for name, found in routes.items() if len(found) > 1} == {}


@pytest.mark.parametrize("operation", OPERATIONS, ids=_op_id)
def test_operation_documents_success_and_error_statuses(operation: Operation) -> None:
    statuses = [int(code) for code in operation.spec["responses"]]
    assert any(200 <= code < 300 for code in statuses), "no success response"
    assert any(400 <= code < 500 for code in statuses), "no client error response"
    assert any(code >= 500 for code in statuses), "no server error response"
    if operation.security:
        assert 401 in statuses, "a secured operation must document 401"
    for code in statuses:
        if code >= 400:
            schema = response_media(operation, code).get("application/json", {}).get("schema")
            assert schema, f"{code} has no application/json error schema"


UPLOADS = [operation for operation in OPERATIONS if "multipart/form-data" in request_schemas(operation)]
PRICED_BY_FIELD = [operation for operation in OPERATIONS if "by" in operation.spec.get("x-credits", {})]
MEDIA_TYPE_BY_FIELD = [
    operation
    for operation in OPERATIONS
    if "x-media-type-by" in resolve(operation.api, operation.spec["responses"].get("200", {}))
]


def test_the_figure_checks_below_have_operations_to_check() -> None:
    assert len(UPLOADS) == 3 and len(PRICED_BY_FIELD) == 1 and len(MEDIA_TYPE_BY_FIELD) == 3


@pytest.mark.parametrize("operation", UPLOADS, ids=_op_id)
def test_multipart_operations_state_an_upload_limit_and_413(operation: Operation) -> None:
    assert isinstance(operation.spec.get("x-upload-limit-bytes"), int)
    assert "413" in operation.spec["responses"]


@pytest.mark.parametrize("operation", PRICED_BY_FIELD, ids=_op_id)
def test_figures_that_depend_on_a_request_field_match_its_enum(operation: Operation) -> None:
    credits = operation.spec["x-credits"]
    (schema,) = request_schemas(operation).values()
    (field,) = find_field(operation.api, schema, credits["by"])
    assert set(credits["costs"]) == set(field.schema["enum"])
    assert field.schema["default"] in credits["costs"]
    found = providers(operation)
    if found:
        assert set(found) == set(credits["costs"])
        for name, provider in found.items():
            assert provider.credits == credits["costs"][name]["cost"], name
            assert provider.usd == credits["costs"][name]["usd"], name


@pytest.mark.parametrize("operation", MEDIA_TYPE_BY_FIELD, ids=_op_id)
def test_media_type_choices_match_the_field_and_the_content(operation: Operation) -> None:
    response = resolve(operation.api, operation.spec["responses"]["200"])
    figure = response["x-media-type-by"]
    (schema,) = request_schemas(operation).values()
    (field,) = find_field(operation.api, schema, figure["field"])
    assert set(figure["media_types"]) == set(field.schema["enum"])
    assert set(figure["media_types"].values()) == set(response["content"])


# ---- examples -----------------------------------------------------------------------------------


def _examples(api: str) -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(api, JSON pointer, schema, example object) of every named example in ``api``'s bundle."""

    def walk(node: Any, pointer: str) -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{pointer}/{index}")
        elif isinstance(node, Mapping):
            examples = node.get("examples")
            if isinstance(examples, Mapping) and "schema" in node:
                for name, example in examples.items():
                    yield api, f"{pointer}/examples/{name}", node["schema"], example
            for key, value in node.items():
                if key not in ("examples", "example", "value"):
                    yield from walk(value, f"{pointer}/{key}")

    yield from walk(load_api(api), "")


EXAMPLES = [case for api in APIS for case in _examples(api)]


def test_every_api_has_examples() -> None:
    assert {api for api, *_ in EXAMPLES} == set(APIS)


@pytest.mark.parametrize(("api", "pointer", "schema", "example"), EXAMPLES, ids=[f"{c[0]}{c[1]}" for c in EXAMPLES])
def test_example_is_sourced_and_valid(
    api: str, pointer: str, schema: Mapping[str, Any], example: Mapping[str, Any]
) -> None:
    source = example.get("x-source")
    assert isinstance(source, Mapping) and source.get("document") in SEED_DOCUMENTS, "example without x-source"
    assert "value" in example
    errors = sorted(schema_validator(api, schema).iter_errors(example["value"]), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:3])
