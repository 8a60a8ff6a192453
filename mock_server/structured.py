"""Structured output: JSON that honours the caller's whole JSON Schema (001 "What you can do": "Enforce
structured output - use response_format: 'json_schema' to get strictly-typed JSON without parsing").

The instance comes from ``jsf`` (JSON Schema Faker): it generates from the schema's keywords (pattern,
format, multipleOf, uniqueItems, lengths and item counts, enum, const, ``$defs``/``$ref``, anyOf/oneOf/
allOf, nesting, ``additionalProperties: false``), from a narrowed copy of the schema (:func:`_narrowed`:
sizes a model would answer, and the mock's own makers where jsf is wrong). Every draw is then judged by
``jsonschema`` against the schema itself, with format checking on (the validator the suite uses); a draw
that misses (the exclusivity of oneOf, a float ``multipleOf``, a tree grown too deep) is replaced by the
next, up to :data:`MAX_DRAWS` draws. So an answer is valid against the schema, or the request is refused
with 400 naming ``<param>`` (``response_format.json_schema.schema``): never a loose answer, a 500 or a
stall.

Deterministic: draw ``i`` of an answer seeds jsf's generators (the ``random`` module and its Faker) from
the answer's key (the mock's ``--seed`` and the request) and ``i``, so the same seed and request give the
same JSON. jsf draws from process-wide generators, so one answer is made at a time (a lock, taken per
answer: another request's may come between the choices of one) and the ``random`` module's state is put
back afterwards. Prepared schemas are cached (:data:`CACHE_SIZE`).

Before jsf sees a schema it is checked here (:func:`prepare`), since jsf would act on some of it: it
``eval``s the non-standard keywords ``$provider``, ``$state`` and ``$fixed`` and opens the file or URL of
a non-local ``$ref`` (so both are refused), and it builds whatever size a schema asks for (so sizes past
:data:`MAX_ITEMS` and :data:`MAX_CHARS` and nesting past :data:`MAX_SCHEMA_DEPTH` are refused, and its
work for one answer stops after :data:`BUDGET_S` s: :func:`_budget`). With ``strict: true`` the schema
must also meet OpenAI's documented rules for strict structured outputs (:func:`check_strict`); keywords
beyond OpenAI's strict subset (uniqueItems, minLength...) are honoured, not refused.
"""


from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import jsonschema
import orjson
from jsonschema.validators import validator_for

from mock_server import watchdog
from mock_server.errors import ApiError
from mock_server.textgen import key_for

#: The deepest nesting of objects and arrays a schema may have (OpenAI's strict limit is 10 levels of objects).
MAX_SCHEMA_DEPTH = 64
#: Draws tried for one answer before the request is refused.
MAX_DRAWS = 64
#: Python work one answer (or checking and parsing the schema) may take, in s, before the request is refused.
BUDGET_S = 1.0
#: The largest minItems / minProperties the mock fills (a model's answer is bounded by its output tokens).
MAX_ITEMS = 1_000
#: The largest minLength the mock fills, in characters.
MAX_CHARS = 10_000
#: The most subschemas a schema may have once its non-recursive ``$ref``s are expanded (as jsf expands
#: them): 40 definitions that each refer twice to the next would be 2**40.
MAX_EXPANDED_NODES = 100_000
#: The sizes a draw aims at when the schema allows more: items of an array, characters of a string.
ANSWER_ITEMS, ANSWER_CHARS = 8, 200
#: The longest structured answer, in characters of JSON; a longer draw counts as a miss.
MAX_ANSWER_CHARS = 1_000_000
#: OpenAI's documented limits for strict schemas: object nesting levels, object properties in all,
#: enum values in all.
STRICT_MAX_DEPTH, STRICT_MAX_PROPERTIES, STRICT_MAX_ENUM_VALUES = 10, 5_000, 1_000
#: Prepared schemas kept (by canonical JSON), least recently used dropped first.
CACHE_SIZE = 256
#: jsf extensions that it evaluates as Python: never from a caller.
_EVALUATED = ("$provider", "$state", "$fixed")
#: Keywords whose value is a map of subschemas / a list of subschemas / one subschema.
_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SINGLE = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames",
           "unevaluatedProperties", "unevaluatedItems", "additionalItems")


@dataclass(frozen=True)
class Prepared:
    """A schema checked and parsed once: jsf's parsed form and the validator that judges its draws."""

    generator: Any
    validator: Any
    param: str


_CACHE: OrderedDict[bytes, Prepared] = OrderedDict()
_DRAW_LOCK = threading.Lock()


def require_support(model: Any, kind: str, param: str) -> None:
    """Raise ApiError 400 naming ``param`` when ``kind`` (``text``, ``json_object``, ``json_schema``) is not
    ``text`` and ``model`` (a catalogue Model) has no structured output."""
    if kind != "text" and not model.structured_output:
        raise ApiError(400, f"Model '{model.id}' does not support structured output.", param=param)


def check_nesting(schema: Any, param: str) -> None:
    """Raise ApiError 400 naming ``param`` when ``schema`` (any JSON value) nests deeper than
    :data:`MAX_SCHEMA_DEPTH` levels of objects and arrays (checked without recursion, before anything
    recursive reads it: hashing, the metaschema, jsf)."""
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise ApiError(400, f"{param} nests deeper than {MAX_SCHEMA_DEPTH} levels.", param=param)
        if isinstance(value, Mapping):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


async def answers(schema: Any, keys: Sequence[bytes], *, param: str, name: str = "", strict: bool = False
                  ) -> list[str]:
    """One JSON text per key, each valid against ``schema``, made in a worker thread (jsf and the
    checks would hold the event loop). ``param`` is where the schema is in the request
    (``response_format.json_schema.schema``). Raises ApiError 400 naming ``param`` (or a field under
    it) for a schema that is invalid, unsafe, too large, breaks the strict rules, or has no instance
    the mock finds within :data:`MAX_DRAWS` draws and :data:`BUDGET_S` s."""
    return await anyio.to_thread.run_sync(generate, schema, tuple(keys), param, name, strict)


def generate(schema: Any, keys: Sequence[bytes], param: str, name: str = "", strict: bool = False) -> list[str]:
    """:func:`answers`, in the calling thread: :func:`prepare`, then :func:`instance` per key, each within
    :data:`BUDGET_S` s (counted once its turn comes: one answer is made at a time, and
    other requests' answers may come between this request's, so ``n`` choices never hold the others back
    for ``n`` budgets). Raises ApiError 400 as :func:`answers` says."""
    import jsf  # noqa: F401  # its first import (about 0.5 s: Faker, pydantic) is not the schema's time

    with _DRAW_LOCK, _budget(param):
        prepared = prepare(schema, param=param, name=name, strict=strict)
    texts = []
    for key in keys:
        with _DRAW_LOCK, _budget(param):
            texts.append(instance(prepared, key))
    return texts


def prepare(schema: Any, *, param: str, name: str = "", strict: bool = False) -> Prepared:
    """Check ``schema`` and parse it for generation (cached by its canonical JSON and ``strict``).

    Raises ApiError 400 naming ``param`` or a field under it: not an object, not a valid JSON Schema,
    a ``$ref`` that is not local (``#...``), a jsf-evaluated keyword, sizes past the mock's limits, a
    ``pattern`` Python cannot compile, or (``strict``) a break of the strict rules (:func:`check_strict`).
    """
    if not isinstance(schema, Mapping):
        raise ApiError(400, f"{param} must be a JSON Schema object.", param=param)
    check_nesting(schema, param)
    cache_key = key_for(0, schema, strict)
    if cache_key in _CACHE:
        _CACHE.move_to_end(cache_key)
        return _CACHE[cache_key]
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        where = ".".join([param, *map(str, exc.path)])
        raise ApiError(400, f"Invalid schema for {param}: {exc.message}", param=where) from None
    _check_safe(schema, param)
    _check_expansion(schema, param)
    if strict:
        check_strict(schema, param=param, name=name)
    prepared = Prepared(_parse(schema, param), cls(schema, format_checker=cls.FORMAT_CHECKER), param)
    _CACHE[cache_key] = prepared
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return prepared


def instance(prepared: Prepared, key: bytes) -> str:
    """The JSON text of the first of draws 0, 1, ... for ``key`` that the schema accepts (call it
    holding the draw lock, as :func:`generate` does). Raises ApiError 400 naming the schema's ``param``
    when none of :data:`MAX_DRAWS` draws is valid."""
    for draw in range(MAX_DRAWS):
        value = _draw(prepared.generator, key_for(0, key.hex(), draw))
        if value is not _MISS and prepared.validator.is_valid(value):
            text = orjson.dumps(value).decode()
            if len(text) <= MAX_ANSWER_CHARS:
                return text
    raise ApiError(400, f"The mock found no instance of the schema at {prepared.param} in {MAX_DRAWS} draws; it "
                        "generates from type, pattern, format, multipleOf, uniqueItems, lengths, enum, const, "
                        "local $ref, anyOf/oneOf/allOf and nesting.", param=prepared.param)


@contextlib.contextmanager
def _budget(param: str) -> Iterator[None]:
    """Stop the block's work after :data:`BUDGET_S` s (:func:`mock_server.watchdog.deadline`: jsf's loops
    may never end, e.g. a uniqueItems array whose items have fewer distinct values than minItems), as
    ApiError 400 naming ``param``."""
    try:
        with watchdog.deadline(BUDGET_S):
            yield
    except watchdog.OutOfTime:
        raise ApiError(400, f"The mock could not make an instance of the schema at {param} within {BUDGET_S:g} s.",
                       param=param) from None


_MISS = object()


def _draw(generator: Any, seed: bytes) -> Any:
    """One jsf draw seeded by ``seed`` (32 bytes), or :data:`_MISS` when jsf fails on the schema."""
    from jsf.schema_types.string import faker

    state = random.getstate()
    random.seed(seed)
    faker.seed_instance(int.from_bytes(seed[:8], "big"))
    try:
        value = generator.generate()
        orjson.dumps(value)  # jsf may build values JSON cannot carry (NaN, non-str keys)
        return value
    except (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            re.error, orjson.JSONEncodeError):
        return _MISS
    finally:
        random.setstate(state)


def _parse(schema: Mapping[str, Any], param: str) -> Any:
    """jsf's parsed form of :func:`_narrowed` ``schema``. Raises ApiError 400 naming ``param`` when jsf
    cannot parse it."""
    import inspect

    from jsf import JSF

    _stable_dates()
    narrowed, makers = _narrowed(schema)
    context = {**inspect.signature(JSF).parameters["context"].default, _MAKERS: makers}
    try:
        # max_recursive_depth bounds a recursive $ref that has a way out (anyOf with null)
        return JSF(narrowed, context=context, allow_none_optionals=0.0, max_recursive_depth=3)
    except Exception as exc:  # jsf raises what its parser meets (KeyError, ValueError, pydantic's errors)
        raise ApiError(400, f"The mock cannot generate from the schema at {param} ({type(exc).__name__}: "
                            f"{str(exc)[:200]}).", param=param) from None


#: The name, in jsf's generation context, of the list of value makers :func:`_narrowed` adds.
_MAKERS = "_mock_makers"


def _narrowed(schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[Callable[[], Any]]]:
    """A copy of ``schema`` whose instances are all instances of ``schema``, sized as a model answers,
    and the value makers it names. ``maxItems`` is at most ``max(minItems, ANSWER_ITEMS)`` and
    ``maxLength`` at most ``max(minLength, ANSWER_CHARS)`` (jsf draws a size uniformly between the
    bounds, so ``maxItems: 100000`` would fill the budget). Two kinds of node are made by the mock's
    makers, named by a ``$provider`` that only the mock writes (a caller's is refused): ``const`` and
    ``enum`` by :func:`_pick` (jsf turns ``true`` into ``1``), and a string with a ``pattern`` and a
    length bound (and no ``format``) by :func:`_fitting` (jsf's own maker ignores the bounds). An
    array whose items refer to a recursive definition (a tree's ``children``) has at most
    ``max(minItems, 1)`` items: jsf bounds no recursion through arrays, and with its default of up to
    5 items a tree most often grows until Python's recursion limit. Draws are still judged against
    ``schema`` itself."""
    narrowed: dict[str, Any] = orjson.loads(orjson.dumps(schema))
    makers: list[Callable[[], Any]] = []
    recursive = _recursive_refs(narrowed)
    for _, node in _nodes(narrowed):
        assert isinstance(node, dict)
        items = node.get("items")
        if isinstance(items, dict) and items.get("$ref") in recursive:
            floor = node.get("minItems", 0)
            node["maxItems"] = max(int(floor) if isinstance(floor, int | float) else 0, 1)
        for low, high, size in (("minItems", "maxItems", ANSWER_ITEMS), ("minLength", "maxLength", ANSWER_CHARS)):
            if isinstance(node.get(high), int | float) and node[high] > size:
                floor = node.get(low, 0)
                node[high] = max(int(floor) if isinstance(floor, int | float) else 0, size)
        maker: Callable[[], Any] | None = None
        if "const" in node:
            maker = functools.partial(_pick, [node["const"]])
        elif isinstance(node.get("enum"), list) and node["enum"]:
            maker = functools.partial(_pick, node["enum"])
        elif isinstance(node.get("pattern"), str) and "format" not in node and ("minLength" in node or
                                                                                 "maxLength" in node):
            maker = functools.partial(_fitting, node["pattern"], int(node.get("minLength", 0)),
                                      int(node.get("maxLength", MAX_CHARS)))
        if maker is not None:
            node["$provider"] = f"{_MAKERS}[{len(makers)}]"
            makers.append(maker)
    return narrowed, makers


def _definitions(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``schema``'s definitions by the local reference that names them: ``{"#/$defs/name": subschema}``
    (``$defs`` and draft 4-7's ``definitions``)."""
    return {f"#/{keyword}/{name}": definition for keyword in ("$defs", "definitions")
            if isinstance(schema.get(keyword), Mapping)
            for name, definition in schema[keyword].items() if isinstance(definition, Mapping)}


def _recursive_refs(schema: Mapping[str, Any]) -> set[str]:
    """The local references (``#/$defs/name``, ``#/definitions/name``) of ``schema`` whose definition can
    reach itself through references."""
    refs = {ref: {node["$ref"] for _, node in _nodes(definition) if isinstance(node.get("$ref"), str)}
            for ref, definition in _definitions(schema).items()}
    recursive = set()
    for start, targets in refs.items():
        seen, stack = set(), list(targets)
        while stack:
            ref = stack.pop()
            if ref == start:
                recursive.add(start)
                break
            if ref not in seen:
                seen.add(ref)
                stack.extend(refs.get(ref, ()))
    return recursive


def _pick(values: list[Any]) -> Any:
    """A copy of one of ``values`` (``random``'s choice: the draw's seed decides)."""
    return copy.deepcopy(random.choice(values))


def _fitting(pattern: str, low: int, high: int) -> str:
    """A string ``pattern`` makes (rstr, jsf's maker) of ``low`` to ``high`` characters: rstr's bound
    for ``*`` and ``+`` lowered to ``high`` (a longer repeat could not fit), up to 32 tries; the last
    try when none fits (the draw then misses)."""
    xeger: Any = importlib.import_module("rstr.xeger")  # the module (the package's ``rstr.xeger`` is a function)

    limit = xeger.STAR_PLUS_LIMIT
    xeger.STAR_PLUS_LIMIT = max(1, min(limit, high))
    try:
        for _ in range(32):
            text: str = xeger.Xeger().xeger(pattern)
            if low <= len(text) <= high:
                break
        return text
    finally:
        xeger.STAR_PLUS_LIMIT = limit


_STABLE: list[bool] = []


def _stable_dates() -> None:
    """Make jsf's date-time, date and time formats a function of the seed alone: jsf draws them
    between 1970 and *now*, so the same seed would give another date each second. Here they are
    drawn between 2000-01-01 and 2030-01-01 (UTC) from jsf's own seeded Faker."""
    if _STABLE:
        return
    from jsf.schema_types import string

    low, high = datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)

    def moment() -> str:
        return str(string.faker.date_time_between(low, high, tzinfo=UTC).isoformat())

    string.format_map.update({"date-time": moment, "date": lambda: moment().split("T")[0],
                              "time": lambda: moment().split("T")[1]})
    _STABLE.append(True)


def _nodes(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every subschema of ``schema`` (dicts in keyword positions) with its path of keys, iteratively
    (a deep schema must not exhaust the stack)."""
    stack: list[tuple[tuple[str, ...], Any]] = [(path, schema)]
    while stack:
        where, node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        yield where, node
        for keyword in _MAPS:
            if isinstance(node.get(keyword), Mapping):
                stack.extend(((*where, keyword, str(k)), v) for k, v in node[keyword].items())
        for keyword in _LISTS:
            if isinstance(node.get(keyword), list):
                stack.extend(((*where, keyword, str(i)), v) for i, v in enumerate(node[keyword]))
        for keyword in _SINGLE:
            if isinstance(node.get(keyword), Mapping | list):
                value = node[keyword]
                if isinstance(value, list):  # draft 4-7 tuple items
                    stack.extend(((*where, keyword, str(i)), v) for i, v in enumerate(value))
                else:
                    stack.append(((*where, keyword), value))


def _dotted(param: str, path: Sequence[str]) -> str:
    return ".".join([param, *path])


def _check_safe(schema: Mapping[str, Any], param: str) -> None:
    """Refuse what jsf would act on dangerously or build without bound (see the module docstring)."""
    for path, node in _nodes(schema):
        for keyword in _EVALUATED:
            if keyword in node:
                raise ApiError(400, f"{_dotted(param, (*path, keyword))}: '{keyword}' is not a JSON Schema keyword "
                                    "the mock accepts.", param=_dotted(param, (*path, keyword)))
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ApiError(400, f"{_dotted(param, (*path, '$ref'))}: only local references (#/$defs/...) are "
                                f"supported, not {ref[:100]!r}.", param=_dotted(param, (*path, "$ref")))
        for keyword, limit in (("minItems", MAX_ITEMS), ("minProperties", MAX_ITEMS), ("minLength", MAX_CHARS)):
            value = node.get(keyword)
            if isinstance(value, int | float) and value > limit:
                raise ApiError(400, f"{_dotted(param, (*path, keyword))}: {value} is more than the mock generates "
                                    f"({limit}).", param=_dotted(param, (*path, keyword)))
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            where = _dotted(param, (*path, "pattern"))
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ApiError(400, f"{where}: not a regular expression the mock can use ({exc}).",
                               param=where) from None


def _check_expansion(schema: Mapping[str, Any], param: str) -> None:
    """Refuse (ApiError 400 naming ``param``) a schema of more than :data:`MAX_EXPANDED_NODES` subschemas
    once each non-recursive local ``$ref`` is replaced by its definition (a recursive one counts once:
    jsf bounds its depth). Sizes are counted per definition, each once, without recursion."""
    definitions = _definitions(schema)
    recursive = _recursive_refs(schema)

    def shape(root: Mapping[str, Any]) -> tuple[int, list[str]]:
        """(subschemas written in ``root``, the non-recursive definitions it refers to, once per reference)."""
        nodes = list(_nodes(root))
        return len(nodes), [node["$ref"] for _, node in nodes
                            if node.get("$ref") in definitions and node["$ref"] not in recursive]

    shapes = {ref: shape(definition) for ref, definition in definitions.items() if ref not in recursive}
    sizes: dict[str, int] = {}
    pending = [(ref, False) for ref in shapes]
    while pending:  # depth first, sizing a definition once those it refers to are sized
        ref, ready = pending.pop()
        if ref in sizes:
            continue
        written, used = shapes[ref]
        if ready:
            sizes[ref] = written + sum(sizes[other] for other in used)
        else:
            pending.append((ref, True))
            pending.extend((other, False) for other in used if other not in sizes)
    root = {keyword: value for keyword, value in schema.items() if keyword not in ("$defs", "definitions")}
    written, used = shape(root)
    total = written + sum(sizes[other] for other in used)
    if total > MAX_EXPANDED_NODES:
        raise ApiError(400, f"{param}: its $refs expand to {total:.3g} subschemas, more than the mock generates "
                            f"from ({MAX_EXPANDED_NODES}).", param=param)


def check_strict(schema: Mapping[str, Any], *, param: str, name: str = "") -> None:
    """OpenAI's documented rules for ``strict: true`` structured outputs: the root is an object
    (``type: object``, not ``anyOf``); every object lists each of its properties in ``required`` and sets
    ``additionalProperties: false``; at most :data:`STRICT_MAX_DEPTH` levels of object nesting,
    :data:`STRICT_MAX_PROPERTIES` properties and :data:`STRICT_MAX_ENUM_VALUES` enum values in all.
    Raises ApiError 400 naming the offending field under ``param``."""
    label = f"Invalid schema for response_format '{name}'" if name else f"Invalid schema at {param}"
    if schema.get("type") != "object" or "anyOf" in schema:
        raise ApiError(400, f"{label}: the root must be a JSON Schema of 'type: \"object\"', not anyOf.",
                       param=_dotted(param, ("type",)))
    properties = enum_values = 0
    for path, node in _nodes(schema):
        depth = sum(1 for part in path if part == "properties")
        if depth > STRICT_MAX_DEPTH:
            raise ApiError(400, f"{label}: more than {STRICT_MAX_DEPTH} levels of nesting at {'.'.join(path)}.",
                           param=_dotted(param, path))
        enum_values += len(node["enum"]) if isinstance(node.get("enum"), list) else 0
        declared = node.get("properties")
        if node.get("type") != "object" and not isinstance(declared, Mapping):
            continue
        declared = declared if isinstance(declared, Mapping) else {}
        properties += len(declared)
        if node.get("additionalProperties") is not False:
            where = _dotted(param, (*path, "additionalProperties"))
            raise ApiError(400, f"{label}: In context={'.'.join(path) or '(root)'}, 'additionalProperties' is "
                                "required to be supplied and to be false.", param=where)
        missing = [key for key in declared if key not in (node.get("required") or [])]
        if missing:
            raise ApiError(400, f"{label}: In context={'.'.join(path) or '(root)'}, 'required' is required to be "
                                f"supplied and to be an array including every key in properties. Missing "
                                f"'{missing[0]}'.", param=_dotted(param, (*path, "required")))
    if properties > STRICT_MAX_PROPERTIES:
        raise ApiError(400, f"{label}: {properties} object properties, more than {STRICT_MAX_PROPERTIES}.",
                       param=param)
    if enum_values > STRICT_MAX_ENUM_VALUES:
        raise ApiError(400, f"{label}: {enum_values} enum values, more than {STRICT_MAX_ENUM_VALUES}.",
                       param=param)
