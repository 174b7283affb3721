#!/usr/bin/env python3
"""Translate a SAM template into the plain CloudFormation JSON that the AWS::Serverless
transform would produce, offline: no network, no AWS account, no credentials.

    .venv/bin/python infra/sam_translate.py template.yaml out.json

Used by infra/lint-template.sh so cfn-lint can check the resources SAM generates (schedule
rules, permissions, roles, API routes), which `sam validate --lint` never looks at: cfn-lint
validates a SAM template against SAM's own schema, not the CloudFormation it turns into.

What differs from the real transform, on purpose:
- local CodeUri paths become a placeholder S3 location (as `sam package` would upload them;
  the transform accepts only S3 locations);
- managed policies named by name (not ARN) cannot be looked up in IAM here; they are left as
  names, which cfn-lint then reports.
Exit 0 with the JSON written; exit 1 with the translator's errors on standard error.
"""

from __future__ import annotations

import json
import os
import sys

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


def translate(sam_template: dict) -> dict:
    _replace_local_paths(sam_template)
    session = boto3.session.Session(region_name=os.environ["AWS_DEFAULT_REGION"])
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), plugins=[], boto_session=session)
    return translator.translate(
        sam_template=sam_template,
        parameter_values={},
        get_managed_policy_map=lambda: {},
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} SAM_TEMPLATE OUT_JSON", file=sys.stderr)
        return 2
    source, out = argv[1], argv[2]
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
        cfn = translate(sam_template)
    except InvalidDocumentException as e:
        print(f"sam_translate: the SAM transform rejects {source}:", file=sys.stderr)
        for cause in e.causes:
            print(f"  - {cause.message}", file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cfn, f, indent=2, sort_keys=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
