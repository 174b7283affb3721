//! Logging and metrics for the functions and tools. Logs are JSON, one object per line, level from
//! `RUST_LOG` (default `info`); no e-mail or address is ever logged, ids are. Metrics go through
//! the `metrics` facade under the names below: each Lambda installs a CloudWatch Embedded Metric
//! Format recorder (namespace [`NAMESPACE`], dimension `Service`); elsewhere they cost nothing.

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Mall";
/// Counter, labelled `Outcome` (`OK` or the error code).
pub const CHECKOUTS_BY_OUTCOME: &str = "CheckoutsByOutcome";
/// Histogram, milliseconds.
pub const CHECKOUT_LATENCY_MS: &str = "CheckoutLatencyMs";
/// Counter: `CheckoutJobQueued` events that could not be published.
pub const JOB_QUEUED_EVENT_FAILURES: &str = "JobQueuedEventFailures";
pub const JOBS_COMPLETED: &str = "JobsCompleted";
pub const JOBS_RETRIED: &str = "JobsRetried";
/// Counter: jobs that went dead (`failed`). The template's alarm watches it.
pub const JOBS_FAILED: &str = "JobsFailed";
/// Histogram, milliseconds.
pub const JOB_PROCESSING_MS: &str = "JobProcessingMs";
/// Histogram, milliseconds: each batch's longest transaction attempt (load, plan, writes); the
/// budget cuts a batch at 5 s.
pub const BATCH_TRANSACTION_MS: &str = "BatchTransactionMs";
/// Counter: times a batch waited for its turn while another batch's transaction held it.
pub const BATCH_TURN_WAITS: &str = "BatchTurnWaits";
/// Gauge: pending jobs after a drain.
pub const QUEUE_DEPTH: &str = "QueueDepth";
/// Gauge: age of the oldest pending job after a drain, seconds. The template's alarm watches it.
pub const OLDEST_PENDING_AGE_SECONDS: &str = "OldestPendingAgeSeconds";
/// Counter: checkouts (and jobs of the app's own checkout, paid by the settings when they run)
/// that found fields of the admin's `rewardsettings` they cannot use (each read as
/// [`mall_domain::RawSettings::read`] says: the shares' defaults, or no gift).
pub const INVALID_REWARD_SETTINGS: &str = "InvalidRewardSettings";
/// Counter: jobs of ours another worker (the app's own) claimed: seen at our claim (its attempts
/// are not all ours) and after every drain (a `startedAt` within the lease that our claim did not
/// write). The template's alarm watches it: a forgotten app worker shows within minutes.
pub const FOREIGN_CLAIMS: &str = "ForeignClaims";

/// Units for the metrics above, so the dashboards read right.
pub fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(CHECKOUTS_BY_OUTCOME, Unit::Count, "checkouts by outcome");
    metrics::describe_histogram!(CHECKOUT_LATENCY_MS, Unit::Milliseconds, "checkout latency");
    metrics::describe_counter!(
        JOB_QUEUED_EVENT_FAILURES,
        Unit::Count,
        "events not published"
    );
    metrics::describe_counter!(JOBS_COMPLETED, Unit::Count, "reward jobs completed");
    metrics::describe_counter!(
        INVALID_REWARD_SETTINGS,
        Unit::Count,
        "checkouts and the app's jobs that found reward settings fields unusable"
    );
    metrics::describe_counter!(
        FOREIGN_CLAIMS,
        Unit::Count,
        "claimed jobs another worker had touched"
    );
    metrics::describe_counter!(
        JOBS_RETRIED,
        Unit::Count,
        "reward jobs sent back to pending"
    );
    metrics::describe_counter!(JOBS_FAILED, Unit::Count, "reward jobs that went dead");
    metrics::describe_histogram!(JOB_PROCESSING_MS, Unit::Milliseconds, "job processing time");
    metrics::describe_histogram!(
        BATCH_TRANSACTION_MS,
        Unit::Milliseconds,
        "a batch's longest transaction attempt"
    );
    metrics::describe_counter!(BATCH_TURN_WAITS, Unit::Count, "waits for the batches' turn");
    metrics::describe_gauge!(QUEUE_DEPTH, Unit::Count, "pending reward jobs");
    metrics::describe_gauge!(
        OLDEST_PENDING_AGE_SECONDS,
        Unit::Seconds,
        "oldest pending job age"
    );
}

/// The CloudWatch Embedded Metric Format recorder of a Lambda (`service`: the `Service`
/// dimension), its units described; flushed to stdout after every invocation (and, by the
/// worker, between the parts of a long drain).
pub fn emf_metrics(
    service: &'static str,
) -> Result<&'static metrics_cloudwatch_embedded::Collector, metrics_cloudwatch_embedded::Error> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Service", service)
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("RequestId")
        .init()?;
    describe_metrics();
    Ok(collector)
}

/// Installs a log subscriber for a command run in a terminal (the `mall` command): readable lines
/// on standard error, so standard output keeps only the command's result; `RUST_LOG`, else
/// warnings and errors only. Once per process; later calls do nothing.
pub fn init_terminal_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Installs the JSON log subscriber (once per process; later calls do nothing).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
