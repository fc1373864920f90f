"""What the user reads when a config file is wrong: a strict YAML load and one-line schema errors.

``strict_load(path)`` reads a YAML (or JSON) config file with a loader that refuses a key given twice in one
block, naming the file, the line and the key (PyYAML, and so Snakemake, silently keeps the last one: a
variant written twice under one name would become the second). ``schema_error(config, schema)`` turns a
config that fails ``config/schema.yaml`` into one summary line (the field's path, what was expected, a
did-you-mean for a misspelt key) followed by the details, instead of jsonschema's dump of the whole schema.

Standard library, PyYAML and jsonschema only (both are Snakemake's own dependencies): the Snakefile calls these
at start-up, where nothing else may be installed (``--sdm conda``).
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
from pathlib import Path
from typing import Any, Iterable

import yaml

#: Details listed under the summary line (the first schema errors beyond the summary).
MAX_DETAILS = 5


class DuplicateKeyError(ValueError):
    """A key given twice in one block of a config file."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping key given twice."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)  # '<<' merge keys: a merged key may be overridden, a written one may not
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if first is not None:
            raise DuplicateKeyError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice in one block "
                                    f"(first on line {first}); YAML would silently keep only the last")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def strict_load(path: str | Path) -> Any:
    """The YAML/JSON document of ``path``; a ValueError naming the file, line and key on a duplicated key."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise ValueError(f"config file {path}, {err}") from None


def typed_overrides(overrides: dict) -> dict:
    """``--config`` values with their nested scalars typed as in a config file. Snakemake parses a nested value
    (``--config "compute={'threads': 3}"``) with YAML's BaseLoader, which leaves every scalar a string ('3',
    'true'); each such string is read again as YAML (3, True); top-level values are already typed."""

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            try:
                typed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            return typed if isinstance(typed, (int, float, bool)) or typed is None else value
        return value

    return {k: walk(v) if isinstance(v, (dict, list)) else v for k, v in overrides.items()}


def check_files(paths: Iterable[str | Path]) -> None:
    """Re-read every config file given (the default and each --configfile) strictly: duplicate keys are refused."""
    for path in paths:
        strict_load(path)


def check_folders(datasets: dict) -> None:
    """Every data folder the datasets name must exist; all missing ones are listed in one error (the first in its
    summary line), each with the fields that name it, so that real.yaml's paths are filled in in one go."""
    missing: dict[str, list[str]] = {}
    for name, ds in datasets.items():
        for split, src in (ds.get("splits") or {}).items():
            if "path" in src and not Path(src["path"]).expanduser().is_dir():
                missing.setdefault(src["path"], []).append(f"datasets.{name}.splits.{split}.path")
    if missing:
        first, fields = next(iter(missing.items()))
        raise ValueError(f"config {fields[0]}: folder {first!r} does not exist ({len(missing)} data folder(s) missing "
                         "in all, listed below: fill in their paths)\n" + "\n".join(
                             f"  folder {folder!r} ({', '.join(where)})" for folder, where in missing.items()))


def check_runtime(runtime: dict, family_names: list[str]) -> None:
    """``compute.runtime``'s per-family blocks name families of the registry (``family_names``)."""
    for kind in ("reconstruct", "attack"):
        for name in runtime[kind]:
            if name not in family_names:
                raise ValueError(f"config compute.runtime.{kind}.{name}: unknown family"
                                 f"{did_you_mean(name, family_names)}; expected one of {', '.join(family_names)}")


# ---- schema errors ------------------------------------------------------------------------------------------


def _where(path: Iterable) -> str:
    """A field path as the config's reader writes it: ``methods.unet.chans``, ``archives[0].url``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices`` to a misspelt ``word``, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expected(schema: dict) -> str:
    """What a schema node asks for, in words: its type, enum or bounds."""
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    parts = [schema["type"] if isinstance(schema.get("type"), str) else " or ".join(schema.get("type", []))]
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema:
            parts.append(f"{word} {schema[key]}")
    return " ".join(p for p in parts if p) or "a value matching the schema"


def _describe(err) -> str:
    """One line for one jsonschema error: field path, what is wrong, what was expected."""
    where = _where(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        key = unknown[0] if unknown else "?"
        field = f"{where}.{key}" if where else str(key)
        return (f"config {field}: unknown key{did_you_mean(key, allowed)}; expected one of: "
                f"{', '.join(sorted(allowed))}")
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [k for k in err.validator_value if k not in err.instance]
        return f"config {where or '(top level)'}: missing required key(s) {', '.join(map(repr, missing))}"
    if err.validator == "enum":
        return (f"config {where}: {_short(err.instance)} is not allowed{did_you_mean(err.instance, err.validator_value)};"
                f" expected {_expected(err.schema)}")
    if err.validator in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"config {where}: got {_short(err.instance)}; expected {_expected(err.schema)}"
    return f"config {where or '(top level)'}: {err.message[:200]}"


def schema_error(config: dict, schema: dict) -> str | None:
    """The summary line and details of ``config``'s schema errors (None when it has none). The most relevant
    error (jsonschema's ``best_match``, the deepest) comes first; the schema's description of that field, if it
    has one, and up to MAX_DETAILS further errors follow, one per line."""
    import jsonschema
    from jsonschema.exceptions import best_match, relevance

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=relevance)
    if not errors:
        return None
    best = best_match(errors)
    lines = [_describe(best)]
    if best.schema.get("description") and best.validator not in ("additionalProperties", "required"):
        lines.append(f"  ({_where(best.absolute_path)}: {best.schema['description']})")
    others = [_describe(e) for e in errors if e is not best]
    lines += [f"  also: {line}" for line in dict.fromkeys(others) if line != lines[0]][:MAX_DETAILS]
    return "\n".join(lines)


def non_finite(config: Any, where: str = "") -> tuple[str, float] | None:
    """(field, value) of the first field of ``config`` holding NaN or an infinity (YAML's ``.nan``, ``.inf``), else
    None: JSON Schema's bounds cannot refuse NaN (every comparison with it is false), and no setting takes either."""
    if isinstance(config, float) and not math.isfinite(config):
        return where or "(top level)", config
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    for key, value in items:
        inner = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
        if (found := non_finite(value, inner)) is not None:
            return found
    return None


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def _schema_field(path: str | Path, keys: tuple[str, ...]) -> dict:
    """The schema node of the field ``keys`` (e.g. ("shifts", "bootstrap")), read once per schema file."""
    node = load_schema(path)
    for key in keys:
        node = node["properties"][key]
    return node


def schema_default(path: str | Path, *keys: str) -> Any:
    """The default the schema file ``path`` states for the field ``keys`` (e.g. "shifts", "bootstrap"), for a
    query whose block may be absent; KeyError if the schema states none (a default belongs in the schema)."""
    return copy.deepcopy(_schema_field(path, keys)["default"])


def schema_block_defaults(path: str | Path, *keys: str) -> dict:
    """The defaults the schema file ``path`` states for the fields of the block ``keys`` (e.g. "attacks"): what
    validation fills into the block when a config has it, for a query whose block may be absent."""
    fields = _schema_field(path, keys).get("properties", {})
    return {k: copy.deepcopy(v["default"]) for k, v in fields.items() if "default" in v}


def check_shares(name: str, splits: dict) -> None:
    """Splits of one dataset that read one source (folder or archives) take disjoint shares of its files:
    otherwise a file would be in two splits (a network tested on what it learnt from)."""
    by_source: dict = {}
    for split, src in splits.items():
        share = src.get("share")
        if share is not None and not share[0] < share[1]:
            raise ValueError(f"config datasets.{name}.splits.{split}.share: expected [a, b] with a < b, got {share}")
        source = {k: v for k, v in src.items() if k != "share"}
        if "path" in source:
            source["path"] = str(Path(source["path"]).expanduser().resolve())
        key = json.dumps(source, sort_keys=True)
        by_source.setdefault(key, []).append((split, share))
    for users in by_source.values():
        if len(users) < 2:
            continue
        if any(share is None for _, share in users):
            raise ValueError(f"config datasets.{name}.splits: {[s for s, _ in users]} read the same files; give each "
                             "a disjoint share ([a, b] of the files, e.g. train [0, 0.75] and test [0.75, 1])")
        ordered = sorted(users, key=lambda u: u[1][0])
        for (s1, a), (s2, b) in zip(ordered, ordered[1:]):
            if b[0] < a[1]:
                raise ValueError(f"config datasets.{name}.splits: the shares of {s1} {a} and {s2} {b} overlap; a "
                                 "file would be in both splits")
