//! Plain-text tables of the operators' reports (`--json` prints the reports themselves).

use std::fmt::Write;

use mall_store::{AuditReport, CutoverReport, IndexState, NotRedriven, QueueStatus, RedriveReport};

pub fn cutover(r: &CutoverReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        if r.ready {
            "READY       nothing blocks the switch"
        } else {
            "NOT READY   see the blockers"
        }
    );
    for blocker in &r.blockers {
        let _ = writeln!(out, "BLOCKER     {blocker}");
    }
    for warning in &r.warnings {
        let _ = writeln!(out, "WARNING     {warning}");
    }
    let _ = writeln!(out, "\nAMOUNT TYPES");
    for f in &r.amount_types {
        let types: Vec<String> = f.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = writeln!(
            out,
            "  {:<40} {}",
            format!("{}.{}", f.collection, f.field),
            types.join(", ")
        );
    }
    let _ = writeln!(out, "\nTHE APP'S OWN JOBS");
    if r.legacy_jobs.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for j in &r.legacy_jobs {
        let _ = writeln!(
            out,
            "  {:<9} {:<11} {:>6}  {}",
            j.era, j.status, j.count, j.fate
        );
    }
    if !r.seed_era_jobs.is_empty() {
        let _ = writeln!(out, "\nOPEN SEED-ERA JOBS (oldest first)");
        for j in &r.seed_era_jobs {
            let _ = writeln!(
                out,
                "  {}  {:<10} age {:>9} s  R {:>12}  attempts {}",
                j.id, j.status, j.age_seconds, j.reward_points, j.attempts
            );
        }
    }
    if !r.redrivable_jobs.is_empty() {
        let _ = writeln!(out, "\nFAILED SEED-ERA JOBS PAYABLE NOW (re-drive them)");
        for id in &r.redrivable_jobs {
            let _ = writeln!(out, "  {id}");
        }
    }
    let p = &r.gifts_pool;
    let _ = writeln!(
        out,
        "\nGIFTS POOL  document {}   ledger (the app's formula) {}   not counted yet {} ({} entries)   {}",
        p.document.as_deref().unwrap_or("none yet"),
        p.ledger,
        p.uncounted,
        p.uncounted_entries,
        if p.agrees { "agree" } else { "DIFFER: see the warnings" }
    );
    let s = &r.settings;
    let _ = writeln!(
        out,
        "\nREWARD SETTINGS  {}",
        match (s.found, s.invalid_fields.is_empty()) {
            (false, _) => "no document: the app's defaults".to_owned(),
            (true, true) => "the admin's document".to_owned(),
            (true, false) => format!(
                "the admin's document, with UNUSABLE fields ({}): see the warnings",
                s.invalid_fields.join(", ")
            ),
        }
    );
    let _ = writeln!(
        out,
        "  tree {}   gifts {}   direct referral {}   app {} (configured {})",
        s.tree_share, s.gifts_share, s.referral_share, s.app_share_applied, s.app_share_configured
    );
    let _ = writeln!(
        out,
        "  signup gift {}   level gifts paid {}",
        s.signup_gift.as_deref().unwrap_or("off"),
        if s.level_gifts_paid.is_empty() {
            "none".to_owned()
        } else {
            s.level_gifts_paid
                .iter()
                .map(|(l, p)| format!("{l} {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(out, "\nINDEXES");
    for i in &r.indexes {
        let state = match &i.state {
            IndexState::Present => "present".to_owned(),
            IndexState::Equivalent { existing } => format!("equivalent: {existing}"),
            IndexState::Missing => "missing: created at start-up".to_owned(),
            IndexState::Conflicting { existing, why } => {
                format!("conflicting: {existing} ({why})")
            }
        };
        let _ = writeln!(
            out,
            "  {:<45} {}{}",
            format!("{}.{}", i.collection, i.name),
            state,
            if i.guarantee { "  [guarantee]" } else { "" }
        );
    }
    let _ = writeln!(out, "\nUNREADABLE RECORDS  {}", r.unreadable_count);
    for u in &r.unreadable {
        let _ = writeln!(out, "  {:<13} {}  {}", u.collection, u.id, u.problem);
    }
    out
}

pub fn audit(r: &AuditReport) -> String {
    let mut out = String::new();
    let j = &r.jobs_by_status;
    let _ = writeln!(
        out,
        "READ        customers {}   purchases {}   jobs {}   reward entries {}",
        r.customers, r.purchases, r.jobs, r.entries
    );
    let _ = writeln!(
        out,
        "JOBS        pending {}   processing {}   completed {}   failed {}   retired {}",
        j.pending, j.processing, j.completed, j.failed, r.jobs_retired
    );
    let _ = writeln!(
        out,
        "REWARDS     completed R total {} milli-points",
        r.rewards_completed_milli
    );
    if r.legacy_purchases > 0 || r.legacy_entries > 0 {
        let _ = writeln!(
            out,
            "LEGACY      purchases {}   reward entries {}   (the original system's, not checked)",
            r.legacy_purchases, r.legacy_entries
        );
    }
    for warning in &r.warnings {
        let _ = writeln!(out, "WARNING     {warning}");
    }
    if r.violations.is_empty() {
        let _ = writeln!(out, "OK          no invariant violated");
    } else {
        let _ = writeln!(out, "VIOLATIONS  {}", r.violations.len());
        for v in &r.violations {
            let line = serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"));
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn status(s: &QueueStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "JOBS        pending {}   processing {}   completed {}   failed {}",
        s.pending, s.processing, s.completed, s.failed
    );
    let _ = writeln!(
        out,
        "oldest pending   {} s",
        or_dash(s.oldest_pending_age_seconds)
    );
    let _ = writeln!(out, "expired leases   {}", s.expired_leases);
    let _ = writeln!(
        out,
        "processing time  avg {} ms   max {} ms",
        or_dash(s.processing_ms_avg),
        or_dash(s.processing_ms_max)
    );
    if s.recent_failures.is_empty() {
        let _ = writeln!(out, "no failed jobs");
    } else {
        let _ = writeln!(
            out,
            "\nRECENT FAILURES\n{:<24}  {:<24}  {:>8}  LAST ERROR",
            "JOB", "FAILED AT", "ATTEMPTS"
        );
        for f in &s.recent_failures {
            let failed_at = f.failed_at.and_then(|t| t.try_to_rfc3339_string().ok());
            let error = f
                .last_error
                .as_ref()
                .map(|e| format!("[{:?}] {}", e.kind, e.message));
            let _ = writeln!(
                out,
                "{:<24}  {:<24}  {:>8}  {}",
                f.job_id.to_hex(),
                or_dash(failed_at),
                f.attempts,
                or_dash(error)
            );
        }
    }
    out
}

pub fn redrive(r: &RedriveReport) -> String {
    let mut out = String::new();
    let verb = if r.dry_run {
        "would re-drive"
    } else {
        "re-driven"
    };
    let _ = writeln!(
        out,
        "matched {}   {} {}   skipped {}{}",
        r.matched.len(),
        verb,
        if r.dry_run {
            r.matched.len()
        } else {
            r.redriven.len()
        },
        r.skipped.len(),
        if r.dry_run {
            "   (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for id in if r.dry_run { &r.matched } else { &r.redriven } {
        let _ = writeln!(out, "  {}  {verb}", id.to_hex());
    }
    for s in &r.skipped {
        let why = match &s.reason {
            NotRedriven::UnknownId => "skipped: no such job".to_owned(),
            NotRedriven::NotFailed { status } => format!("skipped: {status:?}, not failed"),
        };
        let _ = writeln!(out, "  {}  {why}", s.job_id.to_hex());
    }
    out
}
