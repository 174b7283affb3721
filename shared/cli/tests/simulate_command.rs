//! `mall simulate` as a user runs it: the real binary, a file or standard input, JSON out, and
//! one line on standard error with a non-zero exit for invalid input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/scenarios")
}

fn mall(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mall"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn expected_spec_report() -> Value {
    let text = std::fs::read_to_string(scenarios().join("spec-section-9.expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn reproduces_the_spec_example_from_a_file() {
    let file = scenarios().join("spec-section-9.json");
    let out = mall(&["simulate", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report, expected_spec_report());
    assert!(out.stderr.is_empty());
}

#[test]
fn reads_standard_input_without_a_file_or_with_a_dash() {
    let scenario = std::fs::read_to_string(scenarios().join("spec-section-9.json")).unwrap();
    for args in [&["simulate"][..], &["simulate", "-"][..]] {
        let out = mall(args, &scenario);
        assert!(out.status.success(), "{args:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report, expected_spec_report(), "{args:?}");
    }
}

#[test]
fn invalid_input_prints_one_line_on_stderr_and_nothing_on_stdout() {
    let cycle = r#"{"buyer": "a", "rewardPoints": "1", "customers": [
        {"id": "a", "parent": "b", "active": true, "verified": true},
        {"id": "b", "parent": "a", "active": true, "verified": true}]}"#;
    for (input, says) in [
        (cycle, "cycle"),
        (
            r#"{"buyer": "x", "rewardPoints": "1", "customers": []}"#,
            "does not exist",
        ),
        ("{", "invalid scenario"),
    ] {
        let out = mall(&["simulate"], input);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "stdout must stay empty");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(says), "{stderr:?} should say {says:?}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = mall(&["simulate", "/nonexistent/scenario.json"], "");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read /nonexistent/scenario.json"));
}
