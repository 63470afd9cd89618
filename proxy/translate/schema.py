"""JSON Schema (as tools declare it) → Gemini's OpenAPI-subset `Schema`."""

from __future__ import annotations

from typing import Any

import orjson

# Keywords Gemini's Schema knows; anything else is rejected upstream with 'Unknown name'.
_KNOWN = {
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
}
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_STRING_FORMATS = {"enum", "date-time"}
_NUMBER_FORMATS = {"int32", "int64", "float", "double"}
_MAX_DEPTH = 40  # recursive $refs are cut here rather than looping
# Keywords `to_gemini` reads and rewrites into ones Gemini knows; any other key of a schema node is removed.
_REWRITTEN = {
    "$ref",
    "$defs",
    "definitions",
    "allOf",
    "oneOf",
    "const",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "examples",
}


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
    out = {k: v for k, v in schema.items() if k != "allOf"}
    members = schema.get("allOf")
    for member in members if isinstance(members, list) else []:
        if not isinstance(member, dict):
            continue
        for k, v in member.items():
            if k == "properties" and isinstance(v, dict):
                props = out.get("properties")
                out["properties"] = {**(props if isinstance(props, dict) else {}), **v}
            elif k == "required" and isinstance(v, list):
                req = out.get("required")
                have = req if isinstance(req, list) else []
                out["required"] = list(dict.fromkeys(r for r in [*have, *v] if isinstance(r, str)))
            else:
                out.setdefault(k, v)
    return out


def to_gemini(
    schema: Any,
    root: dict[str, Any] | None = None,
    depth: int = 0,
    changes: Changes | None = None,
    path: str = "",
) -> dict[str, Any]:
    """Rewrite one JSON Schema node. Property *names* are data and are never stripped. `changes`, when
    given, collects every keyword removed or rewritten, with its path."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return {}
    root = root if root is not None else schema
    ch = changes if changes is not None else Changes()
    for key in schema:
        if key in _REWRITTEN:
            ch.rewrite(key, path)
        elif key not in _KNOWN:
            ch.remove(key, path)
    if "$ref" in schema:
        target = _resolve_ref(str(schema["$ref"]), root)
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if "allOf" in schema:
        schema = _merge_all_of(schema)

    out: dict[str, Any] = {}
    type_ = schema.get("type")
    nullable = bool(schema.get("nullable"))
    if isinstance(type_, list):
        ch.rewrite("type", path)
        types = [t for t in type_ if isinstance(t, str) and t in _TYPES]
        nullable = nullable or "null" in types
        non_null = [t for t in types if t != "null"]
        if len(non_null) == 1:
            type_ = non_null[0]
        elif non_null:  # several real types: express as anyOf
            out["anyOf"] = [{"type": t} for t in non_null]
            type_ = None
        else:
            type_ = None
    if isinstance(type_, str) and type_.lower() in _TYPES:
        type_ = type_.lower()
        if type_ == "null":
            type_, nullable = None, True
        else:
            out["type"] = type_
    else:
        type_ = None

    for key in ("title", "description", "pattern"):
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        v = schema.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out[key] = v
    for key, excl in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        v = schema.get(key)
        if (
            v is None
            and isinstance(schema.get(excl), (int, float))
            and not isinstance(schema.get(excl), bool)
        ):
            v = schema[excl]  # Gemini has no exclusive bounds; the inclusive one is the closest it can say
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    if "default" in schema:
        out["default"] = schema["default"]
    if "example" in schema:
        out["example"] = schema["example"]
    elif isinstance(schema.get("examples"), list) and schema["examples"]:
        out["example"] = schema["examples"][0]

    fmt = schema.get("format")
    if isinstance(fmt, str):
        if (type_ == "string" and fmt in _STRING_FORMATS) or (
            type_ in ("number", "integer") and fmt in _NUMBER_FORMATS
        ):
            out["format"] = fmt
        else:
            ch.remove("format", path)

    enum = schema.get("enum")
    if "const" in schema and enum is None:
        enum = [schema["const"]]
    if isinstance(enum, list) and enum:
        values = [v for v in enum if v is not None]
        nullable = nullable or len(values) < len(enum)
        if type_ in (None, "string") and all(isinstance(v, str) for v in values):
            out["type"] = type_ = "string"
            out["enum"] = values
        else:
            ch.rewrite("enum", path)
            # Gemini takes string enums only; keep the allowed values where the model can read them, written
            # as JSON (true, not True), and the values' own JSON type where the schema gave none.
            allowed = ", ".join(orjson.dumps(v).decode() for v in values)
            out["description"] = (out.get("description", "") + f" (allowed values: {allowed})").strip()
            kinds = {_json_type(v) for v in values}
            if type_ is None and len(kinds) == 1 and None not in kinds:
                out["type"] = type_ = kinds.pop()

    members = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(members, list) and members:
        conv = []
        for m in members:
            if isinstance(m, dict) and m.get("type") == "null" and len(m) == 1:
                nullable = True
                continue
            conv.append(to_gemini(m, root, depth + 1, ch, f"{path}/anyOf"))
        conv = [c for c in conv if c]
        if len(conv) == 1 and "type" not in out:
            out.update({k: v for k, v in conv[0].items() if k not in out})
        elif conv:
            out["anyOf"] = conv
            out.pop("type", None)

    props = schema.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {
            str(name): to_gemini(p, root, depth + 1, ch, f"{path}/properties/{name}")
            for name, p in props.items()
        }
        out.setdefault("type", "object")
        req = schema.get("required")
        if isinstance(req, list):
            kept = [r for r in req if isinstance(r, str) and r in props]
            if kept:
                out["required"] = list(dict.fromkeys(kept))
    items = schema.get("items")
    if isinstance(items, list):  # tuple form: the first member is the best single description
        items = items[0] if items else None
    if isinstance(items, dict):
        out["items"] = to_gemini(items, root, depth + 1, ch, f"{path}/items")
        out.setdefault("type", "array")
    elif out.get("type") == "array":
        out["items"] = {}
    if out.get("type") == "object" and not out.get("properties") and depth > 0:
        # Gemini rejects an OBJECT with no properties; an untyped schema lets the model send any value.
        del out["type"]
    if nullable:
        out["nullable"] = True
    return out


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
