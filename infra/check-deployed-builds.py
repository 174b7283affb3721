#!/usr/bin/env python3
"""Builds every function exactly as `sam build` does and fails if a test-only or operators-only
item reaches a deployed binary.

    .venv/bin/python infra/check-deployed-builds.py [--template T] [--json OUT]
                                                     (run by `make check-deployed`, part of `make lint`)

For each `AWS::Serverless::Function` of the template built with `BuildMethod: rust-cargolambda`,
the command comes from SAM's own builder (aws_lambda_builders' RustCargoLambdaBuildAction, the
class `sam build` runs: `cargo lambda build --release --arm64 --bin NAME`), run in the
function's `CodeUri` with the target directory SAM gives it; only `--message-format json` is
added, which changes nothing in what is built. Cargo then names every crate it compiles with
its features, and this script checks them against ALLOWED below: the workspace crates a
function may contain and the features each may have there. Anything else fails the check at
once (the build is stopped): a crate of the workspace that is not listed (the test kit, the
`mall` command), a feature not listed (`test-support`, `failpoints`; `operators` in the checkout
or the worker), a test-only crate from the registry (FORBIDDEN_CRATES).

Why it matters: with `CodeUri: .` (the workspace root) Cargo resolves features for every
member at once, so the checkout was compiled with the store's `operators` and `test-support`
features that other members enable; built as its own package (`CodeUri: functions/NAME`) it
is not. infra/test-check-deployed-builds.py proves the check on such a broken copy.

On success it prints each binary's size (target/lambda/NAME/bootstrap, what SAM copies) and,
with --json, writes {"NAME": {"bytes": N, "crates": {...}}} for `make bench`.
Exit 0 all clean; 1 a violation or a failed build; 64 usage or setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each deployed function may contain of the workspace: crate -> the features it may have.
# The functions' own crates and the libraries they depend on; nothing of the test kit or the
# `mall` command; the store's operators' wing only in the operators' function.
ALLOWED: dict[str, dict[str, set[str]]] = {
    "checkout": {
        "checkout": set(),
        "mall-domain": set(),
        "mall-store": set(),
        "mall-runtime": set(),
    },
    "reward-worker": {
        "reward-worker": set(),
        "mall-domain": set(),
        "mall-store": set(),
        "mall-runtime": set(),
    },
    "retry-failed": {
        "retry-failed": set(),
        "mall-domain": set(),
        "mall-store": {"operators"},
        "mall-runtime": set(),
    },
}

# Registry crates that only tests use: one in a deployed build means a test dependency leaked.
FORBIDDEN_CRATES = {"proptest", "jsonschema", "serde_norway", "reqwest"}


def load_template(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse  # the parser `sam build` uses

    return yaml_parse(path.read_text())


def functions(template: dict) -> list[dict]:
    """The template's cargo-lambda functions: name, source directory, architecture, runtime."""
    globals_ = template.get("Globals", {}).get("Function", {})
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        metadata = resource.get("Metadata", {})
        if metadata.get("BuildMethod") != "rust-cargolambda":
            continue
        props = resource.get("Properties", {})
        code_uri = props.get("CodeUri", globals_.get("CodeUri"))
        architectures = props.get("Architectures", globals_.get("Architectures", ["x86_64"]))
        found.append(
            {
                "logical_id": logical_id,
                "binary": metadata.get("BuildProperties", {}).get("Binary"),
                "source_dir": (ROOT / code_uri).resolve() if isinstance(code_uri, str) else None,
                "architecture": architectures[0],
                "runtime": props.get("Runtime", globals_.get("Runtime")),
            }
        )
    return found


def sam_build_command(function: dict) -> list[str]:
    """The command `sam build` runs for this function, from SAM's own builder."""
    from aws_lambda_builders.workflow import BuildMode
    from aws_lambda_builders.workflows.rust_cargo.actions import RustCargoLambdaBuildAction

    class Cargo:  # the resolved `cargo` binary SAM passes to the action
        binary_path = "cargo"

    action = RustCargoLambdaBuildAction(
        source_dir=str(function["source_dir"]),
        binaries={"cargo": Cargo()},
        mode=BuildMode.RELEASE,
        subprocess_cargo_lambda=None,
        runtime=function["runtime"],
        architecture=function["architecture"],
        handler=function["binary"],
    )
    return action.build_command()


def target_directory(source_dir: Path) -> str:
    """The target directory SAM's builder gives cargo (the workspace's, from cargo metadata)."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        cwd=source_dir,
        check=True,
        capture_output=True,
    )
    return json.loads(out.stdout)["target_directory"]


def crate_name(package_id: str) -> tuple[str, bool]:
    """(name, whether it is a workspace member) of a cargo package id."""
    # path+file:///work/main/shared/store#mall-store@0.1.0, path+file:///…/checkout#0.1.0,
    # registry+https://…#serde@1.0.229
    local = package_id.startswith("path+")
    fragment = package_id.rsplit("#", 1)[-1]
    if "@" in fragment:
        return fragment.split("@", 1)[0], local
    return package_id.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1], local


def violations_of(binary: str, name: str, local: bool, features: list[str]) -> list[str]:
    allowed = ALLOWED.get(binary, {})
    if not local:
        if name in FORBIDDEN_CRATES:
            return [f"the test-only crate `{name}` is compiled into {binary}"]
        return []
    if name not in allowed:
        return [f"the workspace crate `{name}` (not one of {binary}'s) is compiled into {binary}"]
    extra = sorted(set(features) - allowed[name])
    if extra:
        return [f"`{name}` is compiled into {binary} with feature(s) {', '.join(extra)}"]
    return []


def check(function: dict) -> tuple[list[str], dict, Path | None]:
    """(violations, the workspace crates compiled with their features, the bootstrap SAM copies)."""
    binary = function["binary"]
    if function["source_dir"] is None or not (function["source_dir"] / "Cargo.toml").is_file():
        return [f"{function['logical_id']}: CodeUri is not a crate's directory"], {}, None
    command = sam_build_command(function) + ["--locked", "--message-format", "json"]
    # `cargo lambda` (and the Zig it links arm64 with) from the project's virtualenv.
    path = os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])
    target = target_directory(function["source_dir"])
    env = dict(os.environ, PATH=path, CARGO_TARGET_DIR=target)
    where = function["source_dir"].relative_to(ROOT)
    print(f"check-deployed: {binary}: in {where}: {' '.join(command)}", file=sys.stderr, flush=True)
    process = subprocess.Popen(
        command, cwd=function["source_dir"], env=env, stdout=subprocess.PIPE, text=True
    )
    found: list[str] = []
    crates: dict[str, list[str]] = {}
    assert process.stdout is not None
    for line in process.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact":
            continue
        name, local = crate_name(message["package_id"])
        if local:
            crates[name] = sorted(message.get("features", []))
        found += violations_of(binary, name, local, message.get("features", []))
        if found:
            # No need to finish a build that cannot ship.
            process.terminate()
            break
    status = process.wait()
    if not found and status != 0:
        found.append(f"`{' '.join(command)}` failed (exit {status})")
    return found, crates, Path(target) / "lambda" / binary / "bootstrap"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--json", help="write each binary's size and crates here")
    args = parser.parse_args(argv[1:])
    template_path = Path(args.template)
    fns = functions(load_template(template_path))
    if not fns:
        print(f"check-deployed: no cargo-lambda function in {template_path}", file=sys.stderr)
        return 64
    unknown = [f["binary"] for f in fns if f["binary"] not in ALLOWED]
    if unknown:
        print(f"check-deployed: no ALLOWED entry for {', '.join(unknown)}", file=sys.stderr)
        return 64
    failed = False
    report = {}
    for function in fns:
        problems, crates, bootstrap = check(function)
        for problem in problems:
            print(f"check-deployed: FAIL: {problem}", file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            size = bootstrap.stat().st_size
            report[function["binary"]] = {"bytes": size, "crates": crates}
            listed = ", ".join(
                f"{crate} [{' '.join(features) or 'no features'}]"
                for crate, features in sorted(crates.items())
            )
            print(
                f"check-deployed: {function['binary']}: clean ({listed}); "
                f"bootstrap {size / 1048576:.2f} MiB",
                file=sys.stderr,
            )
    if args.json and not failed:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
