"""config/README.md's settings tables are generated from config/schema.yaml (robustcs.configdoc): they cannot drift."""

import pytest

from robustcs import configdoc
from robustcs.configcheck import load_schema


def test_readme_tables_are_the_schemas():
    text = configdoc.README.read_text(encoding="utf-8")
    assert configdoc.render(text, load_schema(configdoc.SCHEMA)) == text, (
        f"config/README.md's settings tables differ from config/schema.yaml; regenerate: {configdoc.COMMAND}")
    assert configdoc.main(["--check"]) == 0


def test_every_setting_is_described():
    schema = load_schema(configdoc.SCHEMA)
    bare = [row[0] for name, node in schema["properties"].items() for row in configdoc.rows(node, schema, name)
            if not row[4]]
    bare += [f"{family}: {row[0]}" for family, node in configdoc.family_definitions(schema).items()
             for row in configdoc.rows(node, schema, "methods.<name>") if not row[4]]
    assert not bare, f"add a description to these settings in config/schema.yaml: {bare}"


def test_a_row_states_type_default_range_and_description():
    schema = {
        "properties": {
            "block": {
                "type": "object", "default": {}, "description": "A block.",
                "properties": {
                    "n": {"type": "integer", "minimum": 1, "maximum": 9, "default": 2, "description": "N | count."},
                    "xs": {"type": "array", "minItems": 1, "uniqueItems": True, "default": [0.5],
                           "items": {"type": "number", "exclusiveMinimum": 0}, "description": "Xs."},
                    "k": {"enum": ["a", "b"], "default": "a", "description": "K."},
                    "on": {"type": "boolean", "default": False, "description": "On."},
                    "named": {"type": "object", "propertyNames": {"pattern": "x"},
                              "additionalProperties": {"$ref": "#/$defs/item"}},
                },
            },
        },
        "$defs": {"item": {"type": "object", "description": "An item.",
                           "properties": {"w": {"type": "number", "description": "W."}}}},
    }
    table = configdoc.tables(schema)
    assert "| `block` | mapping | {} |  | A block. |" in table
    assert "| `block.n` | integer | 2 | >= 1, <= 9 | N \\| count. |" in table
    assert "| `block.xs` | list of number | [0.5] | at least 1 item, distinct, each > 0 | Xs. |" in table
    assert "| `block.k` | one of a, b | a |  | K. |" in table and "| `block.on` | boolean | false |  | On. |" in table
    assert "| `block.named.<name>.w` | number |  |  | W. |" in table  # through the $ref
    assert "| `datasets.<name>.demo.size` | integer | 128 (DemoSpec) |" in configdoc.README.read_text()


def test_render_replaces_only_the_block_and_needs_the_markers():
    schema = {"properties": {"seed": {"type": "integer", "default": 0, "description": "Seed."}}}
    text = f"prose before\n{configdoc.START}\nstale\n{configdoc.END}\nprose after\n"
    out = configdoc.render(text, schema)
    assert out.startswith("prose before\n") and out.endswith("prose after\n") and "stale" not in out
    assert "| `seed` | integer | 0 |  | Seed. |" in out and configdoc.render(out, schema) == out
    with pytest.raises(ValueError, match="markers"):
        configdoc.render("no markers here\n", schema)


def test_every_family_has_its_settings_table():
    from robustcs import families

    schema = load_schema(configdoc.SCHEMA)
    assert list(configdoc.family_definitions(schema)) == list(families.NAMES)  # every family, in display order
    table = configdoc.tables(schema)
    methods_at = table.index("### `methods`\n")
    for family in families.NAMES:
        assert methods_at < table.index(f"### `methods`: family `{family}`\n") < table.index("### `training`")
    assert "| `methods.<name>.lam` | number | 0.001 | >= 0 |" in table  # l1, before cgsense's 0.01
    assert "| `methods.<name>.fit_batch` | integer | 1 | >= 1, <= 64 |" in table
    assert "| `methods.<name>.precision` | one of fp32, tf32, bf16, fp16 | fp32 |" in table  # through the $ref
    assert "| `methods.<name>.checkpoint.sha256` | string |" in table
