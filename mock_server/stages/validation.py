"""Request-body validation against the spec, compiled once per operation at start-up.

A violation becomes ``400 invalid_request_error`` whose ``message`` and ``param`` name the
offending field as a path such as ``messages[0].content[1].image_url.url`` (001 "Errors":
"Schema violation. The message names the offending field.").

Two compiled validators per operation: ``jsonschema_rs`` (Rust) answers "valid?" in about 1 us,
where the Python ``jsonschema`` takes about 300 us for a chat body (``benchmarks/RESULTS.md``);
only a body it rejects goes through Python ``jsonschema``, whose verdict and error are the ones
the client sees. Formats are checked by the Python checkers in both, so the fast path accepts
nothing the Python validator refuses (stricter Rust checks only cost the slow path).

Refusing costs time and memory bounded by a small constant times the body's size, off the event
loop (:meth:`BodyValidator.refuse` runs in a worker thread). Python ``jsonschema`` left alone walks
every failing item and keeps every error of every ``oneOf`` branch (100,000 ``{}`` in ``input``:
33 s and 3.8 GB), so the Python validator here is guided by the Rust one (:class:`_Guide`): a
``oneOf``/``anyOf`` branch Rust finds valid is not walked in Python, a branch keeps at most
:data:`MAX_BRANCH_ERRORS` errors, a long array is bisected with Rust for its first failing item
(the only one walked in Python), and only the first :data:`MAX_ERRORS` errors are weighed. The
message quotes at most an excerpt of the offending value (``errors.excerpt``).
"""

from __future__ import annotations

import functools
import itertools
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import anyio.to_thread
import jsonschema_rs
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import extend

from mock_server.errors import ApiError, excerpt, field_path
from spec import Operation, load_api, request_body_schema, schema_validator

__all__ = ["DISCRIMINATORS", "BodyValidator", "fast_validator", "field_path"]

#: Keys whose ``const`` picks the branch of a ``oneOf`` (content part ``type``, message ``role``).
DISCRIMINATORS = frozenset({"type", "role"})


#: Errors weighed for the message (the first ones found, in document order).
MAX_ERRORS = 16
#: Errors kept per ``oneOf``/``anyOf`` branch (enough to tell which branch the client meant).
MAX_BRANCH_ERRORS = 8
#: Arrays longer than this are bisected with Rust for their first failing item.
BISECT_FROM = 32


class BodyValidator:
    """Validates one operation's JSON request body; build at start-up, call per request."""

    def __init__(self, operation: Operation, media_type: str = "application/json") -> None:
        schema = request_body_schema(operation, media_type)
        self.operation = operation
        self._validator: Draft202012Validator | None = (
            None if schema is None else schema_validator(operation.api, schema)
        )
        self._fast = None if schema is None else fast_validator(operation.api, schema)
        self._guided: Any = None if schema is None else schema_validator(operation.api, schema,
                                                                          cls=_guided_class(operation.api))

    def is_valid(self, body: Any) -> bool:
        """Whether ``body`` is valid: Rust's verdict (about 1 us), else Python's for a value Rust cannot take."""
        if self._validator is None:
            return True
        if self._fast is not None:
            try:
                return bool(self._fast.is_valid(body))
            except (ValueError, TypeError, OverflowError):  # a value Rust cannot take: let Python judge it
                pass
        return self.error(body) is None

    def validate(self, body: Any) -> None:
        """Return None for a valid body; raise :class:`ApiError` (400) naming the bad field (on this thread)."""
        if not self.is_valid(body):
            error = self.error(body)
            if error is not None:
                raise error

    async def refuse(self, body: Any) -> None:
        """For a body :meth:`is_valid` rejected: raise its :class:`ApiError` (400), worded in a worker
        thread so that the event loop is never held by a large body."""
        error = await anyio.to_thread.run_sync(self.error, body)
        if error is not None:
            raise error

    def error(self, body: Any) -> ApiError | None:
        """The 400 naming the first offending field of ``body``, or None when it is valid. Costs time and
        memory in proportion to the body's size (see the module docstring)."""
        if self._guided is None:
            return None
        try:
            found = best_match(itertools.islice(self._guided.iter_errors(body), MAX_ERRORS), key=_relevance)
        except RecursionError:
            return ApiError(400, "Invalid request body: it nests too deeply.")
        return None if found is None else _to_api_error(_narrow(found))


@functools.cache
def _registry(api: str) -> jsonschema_rs.Registry:
    """The bundled document of spec ``api`` as a ``jsonschema_rs`` resource at ``urn:spec:<api>``."""
    return jsonschema_rs.Registry([(f"urn:spec:{api}", load_api(api))])


def _format_checks() -> dict[str, Callable[[str], bool]]:
    """The Python validator's format checks (``uri``...), for the Rust validator to call."""
    checker = Draft202012Validator.FORMAT_CHECKER
    return {name: functools.partial(lambda fmt, value: checker.conforms(value, fmt), name) for name in checker.checkers}


def fast_validator(api: str, schema: Mapping[str, Any]) -> jsonschema_rs.Validator | None:
    """A ``jsonschema_rs`` validator of ``schema`` whose ``#/components/...`` refs resolve in spec ``api``,
    or None when it cannot compile the schema (the Python validator then judges every body)."""
    uri = f"urn:spec:{api}"
    wrapped = {"$id": f"{uri}:subschema", "allOf": [_absolutise(schema, uri)]}
    try:
        return jsonschema_rs.Draft202012Validator(wrapped, registry=_registry(api), validate_formats=True,
                                                  formats=_format_checks())
    except (ValueError, jsonschema_rs.ReferencingError):
        return None


def _absolutise(node: Any, uri: str) -> Any:
    """A schema fragment with its local ``#/...`` refs pointing into the document at ``uri``."""
    if isinstance(node, list):
        return [_absolutise(item, uri) for item in node]
    if isinstance(node, dict):
        out = {key: _absolutise(value, uri) for key, value in node.items()}
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
            out["$ref"] = uri + node["$ref"]
        return out
    return node


def _relevance(error: ValidationError) -> tuple[int, int]:
    # Prefer the deepest error (most specific field); then errors that are not about a branch choice.
    return (-len(error.path), 0 if error.validator in ("oneOf", "anyOf") else 1)


def _narrow(error: ValidationError) -> ValidationError:
    """For a failed ``oneOf``, descend into the branch whose discriminator matched, if any."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(int(sub.schema_path[0]), []).append(sub)
        chosen = _matching_branch(branches.values())
        if chosen is None:
            return error
        error = min(chosen, key=lambda sub: (-len(sub.path), sub.validator == "required"))
    return error


def _matching_branch(branches: Iterable[Sequence[ValidationError]]) -> Sequence[ValidationError] | None:
    """The one branch with no discriminator mismatch, or None when that is not unique.

    Errors in a ``oneOf`` context carry paths relative to the ``oneOf``'s instance.
    """
    candidates = []
    for errors in branches:
        mismatched = any(
            e.validator in ("const", "enum") and len(e.path) == 1 and e.path[0] in DISCRIMINATORS for e in errors
        )
        type_mismatch = any(e.validator == "type" and len(e.path) == 0 for e in errors)
        if not mismatched and not type_mismatch:
            candidates.append(errors)
    return candidates[0] if len(candidates) == 1 else None


def _to_api_error(error: ValidationError) -> ApiError:
    path = list(error.absolute_path)
    rule: Any = error.validator_value
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in rule if name not in present]
        required = field_path([*path, missing[0]]) if missing else field_path(path)
        return ApiError(400, f"Missing required parameter: '{required}'.", param=required)
    param = field_path(path) or None
    where = f"'{param}'" if param else "the request body"
    if error.validator == "oneOf":
        allowed = _discriminator_values(error)
        if allowed:
            key, values = allowed
            name = field_path([*path, key])
            got = error.instance.get(key) if isinstance(error.instance, dict) else None
            return ApiError(400, f"Invalid value for '{name}': {_quote(got)} is not one of {values}.",
                            param=name)
        return ApiError(400, f"Invalid value for {where}: it matches none of the allowed shapes.", param=param)
    return ApiError(400, f"Invalid value for {where}: {_bounded(error)}", param=param)


def _bounded(error: ValidationError) -> str:
    """``error.message`` with the client's value it starts with cut to an excerpt, and cut as a whole to a
    few excerpts' length (``additionalProperties`` lists every unexpected key)."""
    message = error.message
    if isinstance(error.instance, str) and len(message) > 2 * MAX_EXCERPT:
        quoted = repr(error.instance)
        if message.startswith(quoted):
            message = excerpt(quoted) + message[len(quoted):]
    return excerpt(message, 4 * MAX_EXCERPT)


#: Longest quote of a value in a validation message, in characters.
MAX_EXCERPT = 80


@functools.cache
def _guided_class(api: str) -> Any:
    """Draft 2020-12 with ``oneOf``, ``anyOf`` and ``items`` guided by Rust validators of spec ``api``."""
    guide = _Guide(api)
    keywords = {"oneOf": guide.one_of, "anyOf": guide.any_of, "items": guide.items, "type": guide.type,
                "minItems": guide.min_items, "maxItems": guide.max_items, "enum": guide.enum}
    return extend(Draft202012Validator, keywords)  # type: ignore[no-untyped-call]


class _Guide:
    """The guided keywords of :func:`_guided_class`: each asks a Rust validator of the subschema (compiled
    on first use, cached for the process: the subschemas are the spec's, a fixed set) before walking a
    value in Python."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._compiled: dict[tuple[int, bool], tuple[Any, jsonschema_rs.Validator | None]] = {}

    def _rust(self, schema: Any, array_of: bool = False) -> jsonschema_rs.Validator | None:
        key = (id(schema), array_of)
        if key not in self._compiled:  # the schema is kept with its validator, so its id stays its own
            wrapped = {"type": "array", "items": schema} if array_of else schema
            compiled = fast_validator(self.api, wrapped) if isinstance(schema, dict) else None
            self._compiled[key] = (schema, compiled)
        return self._compiled[key][1]

    def _valid(self, schema: Any, instance: Any, array_of: bool = False) -> bool | None:
        """Rust's verdict on ``instance``, or None when Rust cannot judge it."""
        rust = self._rust(schema, array_of)
        if rust is None:
            return None
        try:
            return bool(rust.is_valid(instance))
        except (ValueError, TypeError, OverflowError):
            return None

    def _branch_errors(self, validator: Any, instance: Any, branches: Sequence[Any]
                       ) -> tuple[list[int], list[ValidationError]]:
        """The indexes of the branches ``instance`` matches, and the first errors of the others."""
        valid, errors = [], []
        for index, branch in enumerate(branches):
            found = list(itertools.islice(validator.descend(instance, branch, schema_path=index), MAX_BRANCH_ERRORS))
            if found:
                errors.extend(found)
            else:
                valid.append(index)
        return valid, errors

    def one_of(self, validator: Any, branches: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``oneOf``: exactly one branch matches."""
        valid, errors = self._branch_errors(validator, instance, branches)
        if not valid:
            yield ValidationError(f"{_quote(instance)} is not valid under any of the given schemas",
                                  context=errors)
        elif len(valid) > 1:
            yield ValidationError(f"{_quote(instance)} is valid under each of branches {valid}")

    def any_of(self, validator: Any, branches: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``anyOf``: some branch matches."""
        valid, errors = self._branch_errors(validator, instance, branches)
        if not valid:
            yield ValidationError(f"{_quote(instance)} is not valid under any of the given schemas",
                                  context=errors)

    def items(self, validator: Any, items: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``items``: Python's, but an array past :data:`BISECT_FROM` items is bisected with Rust for its
        first failing item, the only one walked in Python (log2(n) Rust passes over halving prefixes)."""
        prefix = len(schema.get("prefixItems", []))
        if not isinstance(instance, list) or len(instance) - prefix <= BISECT_FROM or items is False:
            yield from Draft202012Validator.VALIDATORS["items"](validator, items, instance, schema)
            return
        for start in range(prefix, len(instance), CHUNK_ITEMS):  # short Rust calls: the GIL changes hands between
            chunk = instance[start:start + CHUNK_ITEMS]
            verdict = self._valid(items, chunk, array_of=True)
            if verdict is None:  # for Python to judge item by item
                for index, item in enumerate(chunk, start):
                    yield from validator.descend(item, items, path=index)
                continue
            if verdict:
                continue
            low, high = 0, len(chunk)  # chunk[:low] is valid, chunk[:high] is not
            while high - low > 1:
                middle = (low + high) // 2
                if self._valid(items, chunk[:middle], array_of=True):
                    low = middle
                else:
                    high = middle
            yield from validator.descend(chunk[high - 1], items, path=start + high - 1)
            return

    def type(self, validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``type``, quoting at most an excerpt of the value."""
        kinds = [types] if isinstance(types, str) else types
        if not any(validator.is_type(instance, kind) for kind in kinds):
            yield ValidationError(f"{_quote(instance)} is not of type {', '.join(repr(kind) for kind in kinds)}")

    def min_items(self, validator: Any, least: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``minItems``, quoting at most an excerpt of the value."""
        if validator.is_type(instance, "array") and len(instance) < least:
            yield ValidationError(f"{_quote(instance)} has {len(instance)} items, fewer than {least}")

    def max_items(self, validator: Any, most: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``maxItems``, quoting at most an excerpt of the value."""
        if validator.is_type(instance, "array") and len(instance) > most:
            yield ValidationError(f"{_quote(instance)} has {len(instance)} items, more than {most}")

    def enum(self, validator: Any, options: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        """``enum``, quoting at most an excerpt of the value."""
        if not any(validator.evolve(schema={"const": option}).is_valid(instance) for option in options):
            yield ValidationError(f"{_quote(instance)} is not one of {options!r}")


#: Items per Rust call when an array is searched for its first failing item.
CHUNK_ITEMS = 16384
#: The quoting of a client's value in a message: bounded however large the value (stdlib reprlib).
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxlong = 3, 6, 6, 40
_QUOTE.maxstring = _QUOTE.maxother = MAX_EXCERPT


def _quote(value: Any) -> str:
    """A short ``repr`` of ``value``, computed without rendering the whole of it."""
    return _QUOTE.repr(value)


def _discriminator_values(error: ValidationError) -> tuple[str, list[Any]] | None:
    """When every branch of a ``oneOf`` rejected the same discriminator key, that key and its allowed values."""
    values: dict[str, list[Any]] = {}
    for sub in error.context or []:
        if sub.validator in ("const", "enum") and len(sub.path) == 1 and sub.path[0] in DISCRIMINATORS:
            rule: Any = sub.validator_value
            options = [rule] if sub.validator == "const" else list(rule)
            values.setdefault(str(sub.path[0]), []).extend(options)
    branches = {sub.schema_path[0] for sub in error.context or []}
    for key, options in values.items():
        if len(options) >= len(branches):
            return key, options
    return None
