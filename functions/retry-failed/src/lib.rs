//! The `retry-failed` Lambda (SPEC §7), invoked by operators (`aws lambda invoke`, `sam local
//! invoke`, `cargo lambda invoke`), never through the public API. JSON in, JSON out:
//!
//! - `{"action": "status"}` → counts per status, oldest pending age, expired leases, the recent
//!   failures with their last error, processing times;
//! - `{"action": "redrive", "jobIds": [...], "reason": "...", "dryRun": false}` or
//!   `{"action": "redrive", "all": true, "failedBefore": "<RFC 3339>", "errorContains": "...",
//!   "limit": 100, "reason": "...", "dryRun": true}` → what matched, what was re-driven, what
//!   was skipped and why.
//!
//! An unknown action or a bad field is answered with `{"ok": false, "error": {...}}` and changes
//! nothing; the store's guarantees (only `failed` jobs, each atomically) do the rest.

use mall_store::bson::DateTime;
use mall_store::QueueStatus;
use mall_store::Store;
use mall_store::{RedriveReport, RedriveRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A parsed, validated operator request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpsAction {
    Status,
    Redrive(RedriveRequest),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusInput {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedriveInput {
    #[serde(default)]
    job_ids: Option<Vec<String>>,
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    failed_before: Option<String>,
    #[serde(default)]
    error_contains: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// Turns an invocation's payload into an action, or says what is wrong with it.
pub fn parse_action(payload: &Value) -> Result<OpsAction, String> {
    let Value::Object(fields) = payload else {
        return Err("the request must be a JSON object with an \"action\"".into());
    };
    let mut rest: Map<String, Value> = fields.clone();
    let action = rest.remove("action");
    let rest = Value::Object(rest);
    match action.as_ref().and_then(Value::as_str) {
        Some("status") => {
            serde_json::from_value::<StatusInput>(rest).map_err(|e| e.to_string())?;
            Ok(OpsAction::Status)
        }
        Some("redrive") => {
            let input: RedriveInput = serde_json::from_value(rest).map_err(|e| e.to_string())?;
            redrive_request(input).map(OpsAction::Redrive)
        }
        Some(other) => Err(format!(
            "unknown action {other:?}: expected \"status\" or \"redrive\""
        )),
        None => Err("\"action\" is required: \"status\" or \"redrive\"".into()),
    }
}

/// The event's fields, read by the store's one reading of a re-drive.
fn redrive_request(input: RedriveInput) -> Result<RedriveRequest, String> {
    RedriveRequest::parse(mall_store::RedriveInput {
        job_ids: input.job_ids,
        all: input.all.unwrap_or(false),
        failed_before: input.failed_before,
        error_contains: input.error_contains,
        limit: input
            .limit
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        reason: input.reason.unwrap_or_default(),
        dry_run: input.dry_run.unwrap_or(false),
    })
    .map_err(|e| e.to_string())
}

/// The answer to an operator.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase", untagged)]
pub enum OpsResponse {
    Status {
        ok: bool,
        action: &'static str,
        status: QueueStatus,
    },
    Redrive {
        ok: bool,
        action: &'static str,
        #[serde(flatten)]
        report: RedriveReport,
    },
    Error {
        ok: bool,
        error: OpsError,
    },
}

#[derive(Debug, Serialize)]
pub struct OpsError {
    pub code: &'static str,
    pub message: String,
}

impl OpsResponse {
    fn error(code: &'static str, message: String) -> Self {
        OpsResponse::Error {
            ok: false,
            error: OpsError { code, message },
        }
    }
}

/// Runs one operator request.
pub async fn handle(store: &Store, payload: &Value) -> OpsResponse {
    let action = match parse_action(payload) {
        Ok(action) => action,
        Err(message) => return OpsResponse::error("INVALID_REQUEST", message),
    };
    let now = DateTime::now();
    match action {
        OpsAction::Status => match store.operators().queue_status(now).await {
            Ok(status) => OpsResponse::Status {
                ok: true,
                action: "status",
                status,
            },
            Err(error) => {
                tracing::error!(%error, "queue status failed");
                OpsResponse::error("UNAVAILABLE", "the database could not be read".into())
            }
        },
        OpsAction::Redrive(request) => match store.operators().redrive(&request, now).await {
            Ok(report) => {
                tracing::info!(
                    dry_run = report.dry_run,
                    matched = report.matched.len(),
                    redriven = report.redriven.len(),
                    skipped = report.skipped.len(),
                    "re-drive done"
                );
                OpsResponse::Redrive {
                    ok: true,
                    action: "redrive",
                    report,
                }
            }
            Err(error) => {
                tracing::error!(%error, "re-drive failed");
                OpsResponse::error(
                    "UNAVAILABLE",
                    "the database failed during the re-drive; jobs already re-driven stay so, \
                     run it again to finish"
                        .into(),
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mall_store::bson::oid::ObjectId;
    use mall_store::RedriveSelection;
    use serde_json::json;

    #[test]
    fn status_and_redrive_parse() {
        assert_eq!(
            parse_action(&json!({"action": "status"})),
            Ok(OpsAction::Status)
        );
        let id = ObjectId::new();
        let by_id = parse_action(&json!({"action": "redrive", "jobIds": [id.to_hex()],
                                         "reason": "tree fixed"}))
        .unwrap();
        let OpsAction::Redrive(request) = by_id else {
            panic!("redrive")
        };
        assert_eq!(request.selection(), &RedriveSelection::Ids(vec![id]));
        assert!(!request.dry_run());
        let all = parse_action(
            &json!({"action": "redrive", "all": true, "reason": "outage",
                                       "failedBefore": "2026-11-23T08:00:00Z",
                                       "errorContains": "conflict", "dryRun": true}),
        )
        .unwrap();
        let OpsAction::Redrive(request) = all else {
            panic!("redrive")
        };
        assert!(request.dry_run());
        assert!(matches!(request.selection(),
            RedriveSelection::Failed { limit: 100, failed_before: Some(_), error_contains: Some(t) } if t == "conflict"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let id = ObjectId::new().to_hex();
        for (payload, says) in [
            (json!([]), "JSON object"),
            (json!({}), "\"action\" is required"),
            (json!({"action": "purge"}), "unknown action"),
            (
                json!({"action": "status", "verbose": true}),
                "unknown field",
            ),
            (
                json!({"action": "redrive", "jobIds": [id], "reason": ""}),
                "reason is required",
            ),
            (
                json!({"action": "redrive", "jobIds": [id]}),
                "reason is required",
            ),
            (
                json!({"action": "redrive", "reason": "r"}),
                "choose the jobs",
            ),
            (
                json!({"action": "redrive", "jobIds": [id], "all": true, "reason": "r"}),
                "choose the jobs",
            ),
            (
                json!({"action": "redrive", "jobIds": ["nope"], "reason": "r"}),
                "not a job id",
            ),
            (
                json!({"action": "redrive", "jobIds": [], "reason": "r"}),
                "job ids",
            ),
            (
                json!({"action": "redrive", "jobIds": [id], "limit": 5, "reason": "r"}),
                "go with",
            ),
            (
                json!({"action": "redrive", "all": true, "limit": 0, "reason": "r"}),
                "limit",
            ),
            (
                json!({"action": "redrive", "all": true, "limit": 5000, "reason": "r"}),
                "limit",
            ),
            (
                json!({"action": "redrive", "all": true, "failedBefore": "yesterday", "reason": "r"}),
                "RFC 3339",
            ),
            (
                json!({"action": "redrive", "all": true, "reason": "r", "force": true}),
                "unknown field",
            ),
            (
                json!({"action": "redrive", "all": "yes", "reason": "r"}),
                "invalid type",
            ),
        ] {
            let err = parse_action(&payload).unwrap_err();
            assert!(err.contains(says), "{payload}: {err:?} should say {says:?}");
        }
    }
}
