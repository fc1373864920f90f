"""config/README.md's settings tables, generated from config/schema.yaml (the one home of every setting's type,
range, default and description).

``python -m robustcs.configdoc`` (from ``workflow/``, or with it on ``sys.path``) rewrites the block between the
markers :data:`START` and :data:`END` of config/README.md; ``--check`` only says whether it is up to date
(``tests/test_configdoc.py`` fails when the README and the schema drift). One table per top-level section, and one
per method family (its ``$defs`` definition); a key below a named entry (a dataset, a mask, a variant, a shift) is
written with ``<name>``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from .configcheck import load_schema
from .specs import DemoSpec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
README = ROOT / "config" / "README.md"
START = "<!-- settings tables: generated from config/schema.yaml by `python -m robustcs.configdoc`; do not edit -->"
END = "<!-- end of the generated settings tables -->"
COMMAND = "cd workflow && ../.venv/bin/python -m robustcs.configdoc"
#: Blocks whose defaults are a dataclass's, not the schema's: the demo block is the ingest job's params as given,
#: so filling defaults into it would rerun every job of a finished study (the column shows them, marked).
CODE_DEFAULTS = {"datasets.<name>.demo": DemoSpec}
#: Prefix of the ``$defs`` entries that define a family's variant settings (``method_l1``: family ``l1``).
FAMILY_DEF = "method_"


def _resolve(node: dict, schema: dict) -> dict:
    """A node with its ``$ref`` (to ``#/$defs/...``) followed."""
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _value(value: Any) -> str:
    """A default or bound as the config file would write it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False).replace('"', "")


def _type(node: dict) -> str:
    if "enum" in node:
        return "one of " + ", ".join(_value(v) for v in node["enum"])
    if "const" in node:
        return _value(node["const"])
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"])
    kind = node.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in node:
        return "list of " + ("mapping" if "properties" in node["items"] else _type(node["items"]))
    if kind == "object" and "properties" in node:
        return "mapping"
    if kind == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
        return f"mapping to {_type(node['additionalProperties'])}"
    return kind or "any"


def _range(node: dict) -> str:
    """Bounds of a value (of a list's items, its lengths and uniqueness), in words."""
    parts = []
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                      ("multipleOf", "multiple of"), ("minLength", "length >="), ("pattern", "matches")):
        if key in node:
            parts.append(f"{word} {_value(node[key])}")
    for key, word in (("minItems", "at least"), ("maxItems", "at most")):
        if key in node:
            parts.append(f"{word} {node[key]} item{'s' if node[key] != 1 else ''}")
    if node.get("uniqueItems"):
        parts.append("distinct")
    inner = node.get("items") or (node.get("additionalProperties") if isinstance(node.get("additionalProperties"),
                                                                                dict) else None)
    if inner and (inner_range := _range(inner)):
        parts.append(f"each {inner_range}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(node: dict, key: str) -> str:
    """The schema's default of a setting, or for a block of :data:`CODE_DEFAULTS` its dataclass's (marked so)."""
    if "default" in node:
        return _value(node["default"])
    block, _, name = key.rpartition(".")
    cls = CODE_DEFAULTS.get(block)
    if cls is not None and name in (fields := {f.name: f for f in dataclasses.fields(cls)}):
        f = fields[name]
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        return f"{_value(value)} ({cls.__name__})"
    return ""


def rows(node: dict, schema: dict, prefix: str) -> Iterator[tuple[str, str, str, str, str]]:
    """(key, type, default, range, description) of a node and every setting below it, depth first."""
    node = _resolve(node, schema)
    props = node.get("properties")
    named = node.get("additionalProperties") if node.get("propertyNames") else None
    items = _resolve(node.get("items", {}), schema)
    if node.get("type") == "array" and "properties" in items:  # a list of mappings: its keys below it
        yield (prefix, _type(node), _value(node["default"]) if "default" in node else "", _range(node),
               node.get("description", ""))
        yield from rows({**items, "description": items.get("description", "")}, schema, f"{prefix}[]")
        return
    if props is None and not isinstance(named, dict):
        yield (prefix, _type(node), _default(node, prefix), _range(node), node.get("description", ""))
        return
    if prefix and not prefix.endswith("[]"):
        yield (prefix, "mapping", _default(node, prefix), "", node.get("description", ""))
    if isinstance(named, dict):
        yield from rows(named, schema, f"{prefix}.<name>")
    for key, child in (props or {}).items():
        yield from rows(child, schema, f"{prefix}.{key}" if prefix else key)


def family_definitions(schema: dict) -> dict[str, dict]:
    """Family name -> its variants' definition (``$defs`` ``method_<family>``), in the schema's order."""
    return {key[len(FAMILY_DEF):]: node for key, node in schema.get("$defs", {}).items() if key.startswith(FAMILY_DEF)}


def _table(title: str, found: Iterator[tuple[str, str, str, str, str]]) -> list[str]:
    out = [f"### {title}\n", "| key | type | default | range | description |\n|---|---|---|---|---|"]
    for row in found:
        key, *rest = map(_cell, row)
        out.append(f"| `{key}` | " + " | ".join(rest) + " |")
    return out + [""]


def tables(schema: dict) -> str:
    """The generated block: one markdown table per top-level section of the schema, the ``methods`` section's
    followed by one per family definition (the settings of a variant of that family)."""
    out = []
    for section, node in schema["properties"].items():
        out += _table(f"`{section}`", rows(node, schema, section))
        if section == "methods":
            for family, definition in family_definitions(schema).items():
                out += _table(f"`methods`: family `{family}`", rows(definition, schema, "methods.<name>"))
    return "\n".join(out).rstrip() + "\n"


def render(readme_text: str, schema: dict) -> str:
    """The README's text with the block between the markers replaced by the schema's tables."""
    if START not in readme_text or END not in readme_text:
        raise ValueError(f"config/README.md: markers {START!r} and {END!r} not found")
    head, rest = readme_text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tables(schema)}{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text, load_schema(SCHEMA))
    if "--check" in argv:
        if new != text:
            print(f"config/README.md's settings tables differ from config/schema.yaml; regenerate: {COMMAND}")
            return 1
        return 0
    if new != text:
        README.write_text(new, encoding="utf-8")
        print("config/README.md: settings tables regenerated")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
