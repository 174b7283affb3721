#!/usr/bin/env python3
"""Lints the checkout API's OpenAPI document.

    .venv/bin/python infra/lint-openapi.py [DOCUMENT]   (default: functions/checkout/openapi.yaml;
                                                         run by `make lint-openapi`)

Checks, in order (each only when the ones before it passed):
1. every `$ref` is local (`#/...`): the Rust tests resolve `#/components/schemas/<Name>` against
   this one document, with nothing else to fetch;
2. the document is valid OpenAPI 3.1 (openapi-spec-validator, pinned in infra/requirements.txt):
   this also resolves every `$ref` and holds every schema to JSON Schema 2020-12 (valid
   keywords and types, every `pattern` a valid regular expression);
3. every example (`example`, `examples.*.value`) of a parameter, header or body matches its
   schema under JSON Schema 2020-12, resolved against the whole document as the tests do.
Prints every problem found and exits 1 if there is one, 0 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import OpenAPIV31SpecValidator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "functions" / "checkout" / "openapi.yaml"


def pointer(path: list) -> str:
    """A JSON pointer fragment for a path of keys."""
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def walk(node, path):
    """Yields (path, dict) for every mapping in the document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, path + [key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, path + [i])


def problems(spec: dict) -> list[str]:
    nodes = list(walk(spec, []))
    # Refs first: the validator would try to fetch a remote one.
    found = [
        f"{pointer(path)}: $ref {node['$ref']!r} is not local (#/...)"
        for path, node in nodes
        if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#/")
    ]
    if found:
        return found
    try:
        found = [
            f"OpenAPI: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
            for e in OpenAPIV31SpecValidator(spec).iter_errors()
        ]
    except Exception as e:  # an unresolvable $ref, for one, is raised rather than reported
        reason = str(e).splitlines()[0].split(" within {")[0]  # not the whole document
        return [f"OpenAPI: cannot validate: {type(e).__name__}: {reason}"]
    if found:
        return found
    for path, node in nodes:
        if "schema" not in node:
            continue
        examples = [("example", node["example"])] if "example" in node else []
        examples += [
            (f"examples/{name}", ex["value"])
            for name, ex in (node.get("examples") or {}).items()
            if isinstance(ex, dict) and "value" in ex
        ]
        # The whole document is the root, as in the Rust tests: local refs resolve against it.
        root = dict(spec, **{"$ref": pointer(path + ["schema"])})
        validator = Draft202012Validator(root, format_checker=FormatChecker())
        for where, value in examples:
            for error in validator.iter_errors(value):
                at = "/".join(map(str, error.absolute_path)) or "(value)"
                found.append(f"{pointer(path)}/{where}: {at}: {error.message}")
    return found


def main() -> int:
    target = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT
    try:
        spec = yaml.safe_load(target.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        print(f"lint-openapi: cannot read {target}: {e}", file=sys.stderr)
        return 1
    if not isinstance(spec, dict):
        print(f"lint-openapi: {target} is not a YAML mapping", file=sys.stderr)
        return 1
    found = problems(spec)
    if found:
        print(f"lint-openapi: {target} is INVALID ({len(found)} problem(s)):", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"lint-openapi: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
          f"valid OpenAPI {spec.get('openapi')}, local refs, examples match their schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
