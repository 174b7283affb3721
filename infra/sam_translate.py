#!/usr/bin/env python3
"""Translate a SAM template into the plain CloudFormation JSON that the AWS::Serverless
transform would produce, offline: no network, no AWS account, no credentials.

    .venv/bin/python infra/sam_translate.py [--param KEY=VALUE ...] [--resolved OUT2]
        [--cfn-lint-config OUT3] template.yaml out.json

Used by infra/lint-template.sh so cfn-lint can check the resources SAM generates (schedule
rules, permissions, roles, API routes), which `sam validate --lint` never looks at: cfn-lint
validates a SAM template against SAM's own schema, not the CloudFormation it turns into.

--param KEY=VALUE (repeatable) gives a parameter's value, as `sam deploy --parameter-overrides`
would; the others take their Default. The values go to the transform (as CloudFormation passes
them), and with them:
- --resolved OUT2 also writes what CloudFormation would create with these values: the values are
  checked against their parameters (AllowedValues, AllowedPattern, lengths, MinValue/MaxValue),
  the template's Rules are evaluated (a failed assertion is an error, as on a real deploy), the
  Conditions are evaluated, resources and outputs whose condition is false are dropped, Fn::If
  takes its branch and AWS::NoValue disappears; Ref to parameters are left as they are.
- --cfn-lint-config OUT3 writes a cfn-lint configuration file (cfn-lint --config-file) holding
  these values, list parameters as JSON arrays, so cfn-lint lints for them: their conditions'
  branches, the values that Refs resolve to. (Not --parameter-files: with those cfn-lint also
  lints once more with the defaults; and --parameters cannot give a list.)

What differs from the real transform, on purpose:
- local CodeUri paths become a placeholder S3 location (as `sam package` would upload them;
  the transform accepts only S3 locations);
- managed policies named by name (not ARN) cannot be looked up in IAM here; they are left as
  names, which cfn-lint then reports.
Exit 0 with the JSON written; exit 1 with the translator's errors (or a rejected parameter
value or failed Rules assertion) on standard error; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

# The translator asks boto3 for a region (to pick the ARN partition); it never calls AWS.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
os.environ.setdefault("AWS_ACCESS_KEY_ID", "offline")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "offline")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import boto3  # noqa: E402
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.parser.parser import Parser  # noqa: E402
from samtranslator.translator.translator import Translator  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

PLACEHOLDER_S3 = "s3://offline-lint-placeholder/code.zip"

# Properties that hold local paths before `sam package`, per resource type (and Globals).
LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}
GLOBALS_TYPES = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
}


def _is_local_path(value: object) -> bool:
    return isinstance(value, str) and not value.startswith("s3://")


def _replace_local_paths(template: dict) -> None:
    for section, resource_type in GLOBALS_TYPES.items():
        props = (template.get("Globals") or {}).get(section)
        if isinstance(props, dict):
            for name in LOCAL_PATH_PROPERTIES[resource_type]:
                if _is_local_path(props.get(name)):
                    props[name] = PLACEHOLDER_S3
    for resource in (template.get("Resources") or {}).values():
        if not isinstance(resource, dict):
            continue
        props = resource.get("Properties")
        if not isinstance(props, dict):
            continue
        if props.get("PackageType") == "Image":
            continue
        for name in LOCAL_PATH_PROPERTIES.get(resource.get("Type"), ()):
            if _is_local_path(props.get(name)):
                props[name] = PLACEHOLDER_S3


def translate(sam_template: dict, parameter_values: dict[str, Any] | None = None) -> dict:
    _replace_local_paths(sam_template)
    session = boto3.session.Session(region_name=os.environ["AWS_DEFAULT_REGION"])
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), plugins=[], boto_session=session)
    return translator.translate(
        sam_template=sam_template,
        parameter_values=dict(parameter_values or {}),
        get_managed_policy_map=lambda: {},
    )


# ---------------------------------------------------------------- parameters, Rules, Conditions


class Rejected(Exception):
    """CloudFormation would refuse these parameter values (constraint, Rules assertion)."""


# Pseudo parameters, as conditions and rules may read them; offline stand-ins.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "offline-lint",
    "AWS::URLSuffix": "amazonaws.com",
}


def parameter_values(template: dict, overrides: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value (override, else Default), checked as CloudFormation checks it.
    List types become lists."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise Rejected(f"no such parameter: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise Rejected(f"parameter {name} has no Default and no value was given")
        kind = spec.get("Type", "String")
        raw = ",".join(str(v) for v in raw) if isinstance(raw, list) else str(raw)
        items = raw.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else [raw]
        for item in items:
            if "AllowedValues" in spec and item not in [str(v) for v in spec["AllowedValues"]]:
                raise Rejected(f"{name}={item!r}: not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], item):
                why = spec.get("ConstraintDescription", f"must match {spec['AllowedPattern']}")
                raise Rejected(f"{name}={item!r}: {why}")
            if kind == "Number":
                try:
                    number = float(item)
                except ValueError:
                    raise Rejected(f"{name}={item!r}: not a number") from None
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise Rejected(f"{name}={item}: below MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise Rejected(f"{name}={item}: above MaxValue {spec['MaxValue']}")
            if "MinLength" in spec and len(item) < int(spec["MinLength"]):
                raise Rejected(f"{name}={item!r}: shorter than MinLength {spec['MinLength']}")
            if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
                raise Rejected(f"{name}={item!r}: longer than MaxLength {spec['MaxLength']}")
        values[name] = items if len(items) > 1 or kind == "CommaDelimitedList" else items[0]
    return values


class Evaluator:
    """Evaluates the condition and rule functions CloudFormation evaluates before creating
    anything, for given parameter values."""

    def __init__(self, template: dict, values: dict[str, Any]) -> None:
        self.values = dict(PSEUDO, **{"AWS::Region": os.environ["AWS_DEFAULT_REGION"]}, **values)
        self.conditions = template.get("Conditions") or {}
        self.cache: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.cache:
            if name not in self.conditions:
                raise Rejected(f"no such condition: {name}")
            self.cache[name] = bool(self.value(self.conditions[name]))
        return self.cache[name]

    def value(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            raise Rejected(f"cannot evaluate {node!r}")
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg not in self.values:
                raise Rejected(f"Ref {arg} is not a parameter")
            return self.values[arg]
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x) for x in arg)
        if fn == "Fn::Contains":
            haystack, needle = self.value(arg[0]), self.value(arg[1])
            return str(needle) in [str(x) for x in haystack]
        if fn == "Fn::EachMemberEquals":
            members, want = self.value(arg[0]), self.value(arg[1])
            return all(str(x) == str(want) for x in members)
        if fn == "Fn::EachMemberIn":
            members, allowed = self.value(arg[0]), self.value(arg[1])
            return all(str(x) in [str(y) for y in allowed] for x in members)
        raise Rejected(f"cannot evaluate {fn} offline")

    def check_rules(self, rules: dict) -> None:
        for name, rule in (rules or {}).items():
            if "RuleCondition" in rule and not self.value(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self.value(assertion["Assert"]):
                    why = assertion.get("AssertDescription", "an assertion failed")
                    raise Rejected(f"rule {name}: {' '.join(str(why).split())}")


_DROP = object()


def _pick(node: Any, ev: Evaluator) -> Any:
    """Fn::If takes its branch; AWS::NoValue (as a value, a list item or a branch) disappears."""
    if isinstance(node, list):
        picked = (_pick(x, ev) for x in node)
        return [x for x in picked if x is not _DROP]
    if not isinstance(node, dict):
        return node
    if node == {"Ref": "AWS::NoValue"}:
        return _DROP
    if len(node) == 1 and "Fn::If" in node:
        name, yes, no = node["Fn::If"]
        return _pick(yes if ev.condition(name) else no, ev)
    out = {}
    for key, value in node.items():
        picked = _pick(value, ev)
        if picked is not _DROP:
            out[key] = picked
    return out


def resolve(cfn: dict, values: dict[str, Any]) -> dict:
    """The template as CloudFormation would deploy it with these values (see the docstring)."""
    ev = Evaluator(cfn, values)
    ev.check_rules(cfn.get("Rules") or {})
    out = {k: v for k, v in cfn.items() if k not in ("Conditions", "Resources", "Outputs")}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, item in (cfn.get(section) or {}).items():
            item = dict(item)
            condition = item.pop("Condition", None)
            if condition is not None and not ev.condition(condition):
                continue
            kept[name] = _pick(item, ev)
        if kept or section in cfn:
            out[section] = kept
    for name, item in out.get("Resources", {}).items():
        depends = item.get("DependsOn")
        if depends is not None:
            depends = [depends] if isinstance(depends, str) else depends
            depends = [d for d in depends if d in out["Resources"]]
            if depends:
                item["DependsOn"] = depends
            else:
                del item["DependsOn"]
    return out


def cfn_lint_config(template: dict, overrides: dict[str, str]) -> dict[str, Any]:
    """A cfn-lint configuration file with the overrides as its one parameter set."""
    declared = template.get("Parameters") or {}
    values: dict[str, Any] = {}
    for name, raw in overrides.items():
        kind = (declared.get(name) or {}).get("Type", "String")
        listy = kind == "CommaDelimitedList" or kind.startswith("List<")
        values[name] = raw.split(",") if listy else raw
    return {"parameters": [values]}


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=os.path.basename(argv[0]), description=__doc__.split("\n")[0])
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter value (repeatable); the others take their Default")
    parser.add_argument("--resolved", metavar="OUT2",
                        help="also write the template as deployed with these values")
    parser.add_argument("--cfn-lint-config", metavar="OUT3",
                        help="also write a cfn-lint --config-file holding these values")
    parser.add_argument("source", metavar="SAM_TEMPLATE")
    parser.add_argument("out", metavar="OUT_JSON")
    args = parser.parse_args(argv[1:])
    overrides: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--param {item!r}: expected KEY=VALUE")
        overrides[key] = value
    source, out = args.source, args.out
    try:
        with open(source, encoding="utf-8") as f:
            sam_template = yaml_parse(f.read())
    except (OSError, Exception) as e:  # yaml errors have no common base worth naming
        print(f"sam_translate: cannot read {source}: {e}", file=sys.stderr)
        return 1
    if not isinstance(sam_template, dict):
        print(f"sam_translate: {source} is not a template (not a mapping)", file=sys.stderr)
        return 1
    try:
        values = parameter_values(sam_template, overrides)
    except Rejected as e:
        print(f"sam_translate: {source}: {e}", file=sys.stderr)
        return 1
    try:
        cfn = translate(sam_template, values)
    except InvalidDocumentException as e:
        print(f"sam_translate: the SAM transform rejects {source}:", file=sys.stderr)
        for cause in e.causes:
            print(f"  - {cause.message}", file=sys.stderr)
        return 1
    _write_json(out, cfn)
    if args.cfn_lint_config:
        _write_json(args.cfn_lint_config, cfn_lint_config(sam_template, overrides))
    if args.resolved:
        try:
            deployed = resolve(cfn, values)
        except Rejected as e:
            shown = " ".join(f"{k}={v}" for k, v in overrides.items()) or "the defaults"
            print(f"sam_translate: CloudFormation would refuse {source} with {shown}: {e}", file=sys.stderr)
            return 1
        _write_json(args.resolved, deployed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
