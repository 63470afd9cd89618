"""JSON Schema (as tools declare it) → Gemini's OpenAPI-subset `Schema`, keyword by keyword.

`KEYWORDS` says what becomes of each keyword a schema node may hold (kept, rewritten, or removed), and
`WRITERS` writes Gemini's keywords in order, each from the source keywords it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

KEEP, REWRITE, REMOVE = "kept", "rewritten", "removed"
KEYWORDS: dict[str, str] = {
    # Gemini's Schema knows these: they stay (a writer below may still drop a value it refuses)
    **dict.fromkeys(
        (
            "type",
            "format",
            "title",
            "description",
            "nullable",
            "enum",
            "items",
            "minItems",
            "maxItems",
            "properties",
            "required",
            "minProperties",
            "maxProperties",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "pattern",
            "example",
            "anyOf",
            "propertyOrdering",
            "default",
        ),
        KEEP,
    ),
    # read and rewritten into keywords Gemini knows ($ref inlined, oneOf → anyOf, const → enum…)
    **dict.fromkeys(
        (
            "$ref",
            "$defs",
            "definitions",
            "allOf",
            "oneOf",
            "const",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "examples",
        ),
        REWRITE,
    ),
}
"""What becomes of each keyword of a schema node; any other is removed (Gemini rejects it as 'Unknown name')."""
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_FORMATS = {
    "string": {"enum", "date-time"},
    "number": {"int32", "int64", "float", "double"},
    "integer": {"int32", "int64", "float", "double"},
}
"""the formats Gemini takes, per type"""
_EXCLUSIVE = {"minimum": "exclusiveMinimum", "maximum": "exclusiveMaximum"}
_MAX_DEPTH = 40  # recursive $refs are cut here rather than looping


class Changes:
    """What a rewrite did to a schema's keywords: keyword → the paths where it was removed or rewritten."""

    def __init__(self) -> None:
        self.removed: dict[str, list[str]] = {}
        self.rewritten: dict[str, list[str]] = {}

    def remove(self, keyword: str, path: str) -> None:
        self.removed.setdefault(keyword, []).append(path or "/")

    def rewrite(self, keyword: str, path: str) -> None:
        self.rewritten.setdefault(keyword, []).append(path or "/")


def _json_type(v: Any) -> str | None:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    return "string" if isinstance(v, str) else None


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        return {}
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, dict) else {}


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The node with its `allOf` members' keywords merged in: properties and required names joined, any other
    keyword the node's own where it has one, else the first member's."""
    out = {k: v for k, v in schema.items() if k != "allOf"}
    members = schema.get("allOf")
    for member in members if isinstance(members, list) else []:
        if isinstance(member, dict):
            for k, v in member.items():
                _merge_keyword(out, k, v)
    return out


def _merge_keyword(out: dict[str, Any], k: str, v: Any) -> None:
    if k == "properties" and isinstance(v, dict):
        props = out.get("properties")
        out["properties"] = {**(props if isinstance(props, dict) else {}), **v}
    elif k == "required" and isinstance(v, list):
        req = out.get("required")
        have = req if isinstance(req, list) else []
        out["required"] = list(dict.fromkeys(r for r in [*have, *v] if isinstance(r, str)))
    else:
        out.setdefault(k, v)


class _Node:
    """One schema node being rewritten: its source (a `$ref` resolved, `allOf` merged), what is written so far,
    and the type and nullability the writers settle between them. (Slotted: one is made per node.)"""

    __slots__ = ("src", "root", "depth", "changes", "path", "out", "type_", "nullable")

    def __init__(self, src: dict[str, Any], root: dict[str, Any], depth: int, changes: Changes, path: str):
        self.src = src
        self.root = root
        self.depth = depth
        self.changes = changes
        self.path = path
        self.out: dict[str, Any] = {}
        self.type_: str | None = None
        self.nullable = False

    def sub(self, schema: Any, path: str) -> dict[str, Any]:
        """A child node (a property, an item, a member), rewritten."""
        return to_gemini(schema, self.root, self.depth + 1, self.changes, path)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type(key: str, n: _Node) -> None:
    """`type` (one name, or a list of them) and `nullable`: a `null` type becomes nullable."""
    type_ = n.src.get(key)
    n.nullable = bool(n.src.get("nullable"))
    if isinstance(type_, list):
        type_ = _type_list(type_, n)
    if isinstance(type_, str) and type_.lower() in _TYPES:
        if type_.lower() == "null":
            n.nullable = True
        else:
            n.type_ = n.out["type"] = type_.lower()


def _type_list(types: list[Any], n: _Node) -> str | None:
    """A list of types → the one real type, or None with the real ones as anyOf."""
    n.changes.rewrite("type", n.path)
    known = [t for t in types if isinstance(t, str) and t in _TYPES]
    n.nullable = n.nullable or "null" in known
    real = [t for t in known if t != "null"]
    if len(real) == 1:
        return real[0]
    if real:  # several real types: express as anyOf
        n.out["anyOf"] = [{"type": t} for t in real]
    return None


def _string(key: str, n: _Node) -> None:
    if isinstance(n.src.get(key), str):
        n.out[key] = n.src[key]


def _count(key: str, n: _Node) -> None:
    v = n.src.get(key)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        n.out[key] = v


def _bound(key: str, n: _Node) -> None:
    v = n.src.get(key)
    exclusive = n.src.get(_EXCLUSIVE[key])
    if v is None and _is_number(exclusive):
        v = exclusive  # Gemini has no exclusive bounds; the inclusive one is the closest it can say
    if _is_number(v):
        n.out[key] = v


def _default(key: str, n: _Node) -> None:
    if key in n.src:
        n.out[key] = n.src[key]


def _example(key: str, n: _Node) -> None:
    """`example`, else the first of `examples`."""
    examples = n.src.get("examples")
    if key in n.src:
        n.out[key] = n.src[key]
    elif isinstance(examples, list) and examples:
        n.out[key] = examples[0]


def _format(key: str, n: _Node) -> None:
    """A format Gemini takes for the node's type; any other is removed."""
    fmt = n.src.get(key)
    if not isinstance(fmt, str):
        return
    if fmt in _FORMATS.get(n.type_ or "", ()):
        n.out[key] = fmt
    else:
        n.changes.remove(key, n.path)


def _enum(key: str, n: _Node) -> None:
    """`enum` (or `const`): string values stay an enum, a null among them makes the node nullable."""
    enum = n.src.get(key)
    if "const" in n.src and enum is None:
        enum = [n.src["const"]]
    if not isinstance(enum, list) or not enum:
        return
    values = [v for v in enum if v is not None]
    n.nullable = n.nullable or len(values) < len(enum)
    if not values:  # only null allowed: nullable says it; an empty enum would be refused
        return
    if n.type_ in (None, "string") and all(isinstance(v, str) for v in values):
        n.out["type"] = n.type_ = "string"
        n.out[key] = values
    else:
        _enum_as_text(values, n)


def _enum_as_text(values: list[Any], n: _Node) -> None:
    """Gemini takes string enums only; keep the allowed values where the model can read them, written as JSON
    (true, not True), and the values' own JSON type where the schema gave none."""
    n.changes.rewrite("enum", n.path)
    allowed = ", ".join(orjson.dumps(v).decode() for v in values)
    n.out["description"] = (n.out.get("description", "") + f" (allowed values: {allowed})").strip()
    kinds = {_json_type(v) for v in values}
    if n.type_ is None and len(kinds) == 1 and None not in kinds:
        n.out["type"] = n.type_ = kinds.pop()


def _members(key: str, n: _Node) -> None:
    """`anyOf` (or `oneOf`): a null member makes the node nullable; one member left is merged into it."""
    members = n.src.get(key) or n.src.get("oneOf")
    if not isinstance(members, list) or not members:
        return
    conv = [c for c in _real_members(members, n) if c]
    if len(conv) == 1 and "type" not in n.out:
        n.out.update({k: v for k, v in conv[0].items() if k not in n.out})
    elif conv:
        n.out[key] = conv
        n.out.pop("type", None)


def _real_members(members: list[Any], n: _Node) -> list[dict[str, Any]]:
    """The members rewritten, less a bare `{"type": "null"}`, which makes the node nullable instead."""
    out = []
    for m in members:
        if isinstance(m, dict) and m.get("type") == "null" and len(m) == 1:
            n.nullable = True
        else:
            out.append(n.sub(m, f"{n.path}/anyOf"))
    return out


def _properties(key: str, n: _Node) -> None:
    """`properties` and the `required` names among them. Property *names* are data and are never stripped."""
    props = n.src.get(key)
    if not isinstance(props, dict) or not props:
        return
    n.out[key] = {str(name): n.sub(p, f"{n.path}/properties/{name}") for name, p in props.items()}
    n.out.setdefault("type", "object")
    req = n.src.get("required")
    if isinstance(req, list):
        kept = [r for r in req if isinstance(r, str) and r in props]
        if kept:
            n.out["required"] = list(dict.fromkeys(kept))


def _items(key: str, n: _Node) -> None:
    items = n.src.get(key)
    if isinstance(items, list):  # tuple form: the first member is the best single description
        items = items[0] if items else None
    if isinstance(items, dict):
        n.out[key] = n.sub(items, f"{n.path}/items")
        n.out.setdefault("type", "array")
    elif n.out.get("type") == "array":
        # an anyOf member merged into this node may have brought its items (Optional[list[str]]): keep them
        n.out.setdefault(key, {})


Writer = Callable[[str, _Node], None]
ALWAYS: frozenset[str] = frozenset()
"""a writer with something to write even when the node has none of its keywords"""
WRITERS: tuple[tuple[str, Writer, frozenset[str]], ...] = (
    ("type", _type, frozenset({"type", "nullable"})),
    ("title", _string, frozenset({"title"})),
    ("description", _string, frozenset({"description"})),
    ("pattern", _string, frozenset({"pattern"})),
    ("minItems", _count, frozenset({"minItems"})),
    ("maxItems", _count, frozenset({"maxItems"})),
    ("minLength", _count, frozenset({"minLength"})),
    ("maxLength", _count, frozenset({"maxLength"})),
    ("minProperties", _count, frozenset({"minProperties"})),
    ("maxProperties", _count, frozenset({"maxProperties"})),
    ("minimum", _bound, frozenset({"minimum", "exclusiveMinimum"})),
    ("maximum", _bound, frozenset({"maximum", "exclusiveMaximum"})),
    ("default", _default, frozenset({"default"})),
    ("example", _example, frozenset({"example", "examples"})),
    ("format", _format, frozenset({"format"})),
    ("enum", _enum, frozenset({"enum", "const"})),
    ("anyOf", _members, frozenset({"anyOf", "oneOf"})),
    ("properties", _properties, frozenset({"properties"})),
    ("items", _items, ALWAYS),  # an array without items gets `{}`
)
"""Gemini's keywords in the order they are written, each with its writer and the source keywords it reads (a
node with none of them skips it: tools' schemas are many small nodes). The order is the output's: later
writers see what earlier ones settled (the type a format or an enum needs)."""


def _readers() -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for i, (_, _, reads) in enumerate(WRITERS):
        for kw in reads:
            out.setdefault(kw, []).append(i)
    return {kw: tuple(places) for kw, places in out.items()}


_READERS = _readers()
"""source keyword → the writers (their places in WRITERS) that read it"""
_ALWAYS = frozenset(i for i, (_, _, reads) in enumerate(WRITERS) if reads is ALWAYS)


def _due(src: dict[str, Any]) -> list[int]:
    """The writers a node needs, in WRITERS' order."""
    due = set(_ALWAYS)
    for k in src:
        due.update(_READERS.get(k, ()))
    return sorted(due)


def _note_keywords(schema: dict[str, Any], changes: Changes, path: str) -> None:
    for key in schema:
        action = KEYWORDS.get(key, REMOVE)
        if action == REWRITE:
            changes.rewrite(key, path)
        elif action == REMOVE:
            changes.remove(key, path)


def _expand(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The node with its `$ref` target inlined under its own keywords, and its `allOf` members merged."""
    if "$ref" in schema:
        target = _resolve_ref(str(schema["$ref"]), root)
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return _merge_all_of(schema) if "allOf" in schema else schema


def to_gemini(
    schema: Any,
    root: dict[str, Any] | None = None,
    depth: int = 0,
    changes: Changes | None = None,
    path: str = "",
) -> dict[str, Any]:
    """Rewrite one JSON Schema node. `changes`, when given, collects every keyword removed or rewritten, with
    its path."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return {}
    root = root if root is not None else schema
    ch = changes if changes is not None else Changes()
    _note_keywords(schema, ch, path)
    n = _Node(_expand(schema, root), root, depth, ch, path)
    for i in _due(n.src):
        key, write, _ = WRITERS[i]
        write(key, n)
    if n.out.get("type") == "object" and not n.out.get("properties") and depth > 0:
        # Gemini rejects an OBJECT with no properties; an untyped schema lets the model send any value.
        del n.out["type"]
    if n.nullable:
        n.out["nullable"] = True
    return n.out


def to_parameters(input_schema: Any, changes: Changes | None = None) -> dict[str, Any] | None:
    """A tool's `input_schema` → `parameters`, or None when it declares no properties
    (Gemini rejects an OBJECT whose `properties` is empty)."""
    schema = to_gemini(input_schema, changes=changes)
    if schema.get("type") == "object" and not schema.get("properties"):
        return None
    return schema or None


def to_json_schema(input_schema: Any, changes: Changes | None = None) -> dict[str, Any] | None:
    """A tool's `input_schema` → `parametersJsonSchema`: the schema as is, less `$schema`."""
    if not isinstance(input_schema, dict):
        return None
    if "$schema" in input_schema and changes is not None:
        changes.remove("$schema", "")
    out = {k: v for k, v in input_schema.items() if k != "$schema"}
    return out or None
