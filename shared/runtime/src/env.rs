//! Every environment variable the mall's binaries read, declared once in [`VARIABLES`]: its
//! name, default, allowed values, which binaries read it and what it means. The parsers read
//! through [`Env`], which only knows declared variables and checks them against their
//! declaration; the test kit's list of variables to keep out of a test and the README's
//! configuration table ([`markdown_table`], checked by a test) come from the same table.
//!
//! Hand-written rather than `envy` or `figment`: those map variables onto a struct's fields, but
//! keep no declaration of ranges, readers and meanings to print or to check the README against.

use std::fmt::Write as _;

use mall_store::QueueSettings;

/// A binary that reads the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Checkout,
    RewardWorker,
    RetryFailed,
    /// The `mall` command.
    Mall,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Checkout => "checkout",
            Binary::RewardWorker => "reward-worker",
            Binary::RetryFailed => "retry-failed",
            Binary::Mall => "mall",
        }
    }
}

/// What a variable may hold, and what applies when it is unset or empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Text that must be set.
    Required,
    /// Text; `default` when unset (`None`: unset means "off", as the meaning says).
    Text { default: Option<&'static str> },
    /// A whole number within `min..=max`; `default` when unset (`None`: unset means "off").
    Integer {
        default: Option<i64>,
        min: i64,
        max: i64,
    },
    /// One of `choices`, the first being the default.
    OneOf { choices: &'static [&'static str] },
    /// A JSON object (its own parser checks it); unset means the built-in default.
    Json,
}

/// One environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub value: Value,
    pub read_by: &'static [Binary],
    pub meaning: &'static str,
}

impl Variable {
    /// An integer variable's declared default, for a type's `Default` (so the number is stated
    /// once, here).
    pub const fn integer_default(&self) -> Option<i64> {
        match self.value {
            Value::Integer { default, .. } => default,
            _ => None,
        }
    }

    /// An integer variable's declared largest value.
    pub const fn integer_max(&self) -> Option<i64> {
        match self.value {
            Value::Integer { max, .. } => Some(max),
            _ => None,
        }
    }
}

/// Seconds of a default stated as a `Duration` by the type that owns it.
const fn seconds(duration: std::time::Duration) -> Option<i64> {
    Some(duration.as_secs() as i64)
}

use Binary::{Checkout, Mall, RetryFailed, RewardWorker};

const ALL: &[Binary] = &[Checkout, RewardWorker, RetryFailed, Mall];

/// The claim the app's own tokens carry the customer's ObjectId in.
pub const APP_CUSTOMER_CLAIM: &str = "Customer_id";

pub const MONGODB_URI: Variable = Variable {
    name: "MONGODB_URI",
    value: Value::Required,
    read_by: ALL,
    meaning: "connection string (never logged)",
};
pub const MONGODB_DATABASE: Variable = Variable {
    name: "MONGODB_DATABASE",
    value: Value::Text {
        default: Some("mall"),
    },
    read_by: ALL,
    meaning: "database name",
};
pub const MONGODB_MAX_POOL_SIZE: Variable = Variable {
    name: "MONGODB_MAX_POOL_SIZE",
    value: Value::Integer {
        default: None,
        min: 1,
        max: 100,
    },
    read_by: ALL,
    meaning:
        "connections a process may pool to the primary (the driver's `maxPoolSize`, above the \
              URI's); unset: one per request or batch it runs at once: 1 for the checkout and \
              retry-failed, `WORKER_CONCURRENCY` for the worker and `mall` (README \"Connection \
              budget\")",
};
pub const REWARD_POLICY: Variable = Variable {
    name: "REWARD_POLICY",
    value: Value::Json,
    read_by: &[Checkout, Mall],
    meaning: "JSON policy overrides, see above; unset: the documents' rules (the template and \
              `make dev` set `{\"preset\": \"current\"}`, the app's current economy: the admin's \
              `rewardsettings` at every checkout); a `settings` document \
              `{_id: \"rewardPolicy\", …}` refines the tree rules at start-up (invalid or \
              unreadable: the checkout refuses to start; database unreachable: read by the first \
              request that reaches it, `503` until then)",
};
pub const REWARD_LEVEL_GIFTS: Variable = Variable {
    name: "REWARD_LEVEL_GIFTS",
    value: Value::OneOf {
        // The queue's default first.
        choices: if QueueSettings::DEFAULT.level_gifts_allowed {
            &["on", "off"]
        } else {
            &["off", "on"]
        },
    },
    read_by: &[Checkout, RewardWorker, Mall],
    meaning: "`off`: no level gifts (the app never paid them); read by the checkout (recorded \
              in the job) and the worker (the app's own jobs)",
};
pub const IDENTITY_MODE: Variable = Variable {
    name: "IDENTITY_MODE",
    value: Value::OneOf {
        choices: &["app-token", "authorizer"],
    },
    read_by: &[Checkout],
    meaning: "`app-token`: verify the app's own HS256 tokens here; `authorizer`: trust API \
              Gateway's JWT authorizer claims",
};
pub const APP_JWT_SECRET_ARN: Variable = Variable {
    name: "APP_JWT_SECRET_ARN",
    value: Value::Text { default: None },
    read_by: &[Checkout],
    meaning: "`app-token` in the cloud: the Secrets Manager secret holding the app's \
              `JWT_SECRET` (read once at start-up)",
};
pub const LOCAL_JWT_SECRET: Variable = Variable {
    name: "LOCAL_JWT_SECRET",
    value: Value::Text { default: None },
    read_by: &[Checkout, Mall],
    meaning: "`app-token` locally: the app's secret itself (never set in the cloud); \
              `mall token` signs with it",
};
pub const CUSTOMER_ID_CLAIM: Variable = Variable {
    name: "CUSTOMER_ID_CLAIM",
    value: Value::Text {
        default: Some(APP_CUSTOMER_CLAIM),
    },
    read_by: &[Checkout, Mall],
    meaning: "token claim holding the customer's ObjectId",
};
pub const CHECKOUT_DEADLINE_MS: Variable = Variable {
    name: "CHECKOUT_DEADLINE_MS",
    value: Value::Integer {
        default: Some(1_000),
        min: 100,
        max: 9_000,
    },
    read_by: &[Checkout],
    meaning: "every checkout request is answered within this: past it, `503 UNAVAILABLE` with \
              `Retry-After` (the API's throttle is derived from it, README \"Connection budget\")",
};
pub const EVENT_BUS_NAME: Variable = Variable {
    name: "EVENT_BUS_NAME",
    value: Value::Text { default: None },
    read_by: &[Checkout],
    meaning: "bus for `CheckoutJobQueued`; unset = no event",
};
pub const JOB_MAX_ATTEMPTS: Variable = Variable {
    name: "JOB_MAX_ATTEMPTS",
    value: Value::Integer {
        default: Some(QueueSettings::DEFAULT.retry.max_attempts as i64),
        min: 1,
        max: 100,
    },
    read_by: &[Checkout, RewardWorker, Mall],
    meaning: "attempts a reward job gets before it is `failed`",
};
pub const JOB_LEASE_SECONDS: Variable = Variable {
    name: "JOB_LEASE_SECONDS",
    value: Value::Integer {
        default: seconds(QueueSettings::DEFAULT.lease),
        min: 1,
        max: 86_400,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "how long a claim lasts before another worker may take the job over",
};
pub const JOB_BACKOFF_BASE_SECONDS: Variable = Variable {
    name: "JOB_BACKOFF_BASE_SECONDS",
    value: Value::Integer {
        default: seconds(QueueSettings::DEFAULT.retry.base),
        min: 0,
        max: 86_400,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "first retry delay (doubles, with jitter, capped at 1 h)",
};
pub const JOB_RETENTION_DAYS: Variable = Variable {
    name: "JOB_RETENTION_DAYS",
    value: Value::Integer {
        default: match QueueSettings::DEFAULT.retention {
            Some(retention) => Some(retention.as_secs() as i64 / 86_400),
            None => None,
        },
        min: 1,
        max: 3_650,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "unset: completed jobs are kept for good (the app's jobs dashboard); a number of \
              days opts in to their removal",
};
pub const WORKER_CONCURRENCY: Variable = Variable {
    name: "WORKER_CONCURRENCY",
    value: Value::Integer {
        default: Some(4),
        min: 1,
        max: 64,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "batches in flight per worker invocation",
};
pub const WORKER_BATCH_SIZE: Variable = Variable {
    name: "WORKER_BATCH_SIZE",
    value: Value::Integer {
        default: Some(50),
        min: 1,
        max: 50,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "jobs claimed and applied together in one transaction (`make bench` measured 50 \
              best)",
};
pub const WORKER_TIME_MARGIN_MS: Variable = Variable {
    name: "WORKER_TIME_MARGIN_MS",
    value: Value::Integer {
        default: Some(5_000),
        min: 0,
        max: 900_000,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "stop claiming when less time than this remains",
};
pub const WORKER_MAX_JOBS: Variable = Variable {
    name: "WORKER_MAX_JOBS",
    value: Value::Integer {
        default: Some(1_000),
        min: 1,
        max: 100_000,
    },
    read_by: &[RewardWorker, Mall],
    meaning: "claims per invocation at most",
};
pub const RUST_LOG: Variable = Variable {
    name: "RUST_LOG",
    value: Value::Text {
        default: Some("info"),
    },
    read_by: ALL,
    meaning: "log level and filter (`tracing_subscriber`'s syntax)",
};

/// Every variable, in the README's order.
pub const VARIABLES: &[Variable] = &[
    MONGODB_URI,
    MONGODB_DATABASE,
    MONGODB_MAX_POOL_SIZE,
    REWARD_POLICY,
    REWARD_LEVEL_GIFTS,
    IDENTITY_MODE,
    APP_JWT_SECRET_ARN,
    LOCAL_JWT_SECRET,
    CUSTOMER_ID_CLAIM,
    CHECKOUT_DEADLINE_MS,
    EVENT_BUS_NAME,
    JOB_MAX_ATTEMPTS,
    JOB_LEASE_SECONDS,
    JOB_BACKOFF_BASE_SECONDS,
    JOB_RETENTION_DAYS,
    WORKER_CONCURRENCY,
    WORKER_BATCH_SIZE,
    WORKER_TIME_MARGIN_MS,
    WORKER_MAX_JOBS,
    RUST_LOG,
];

/// A variable that does not hold what its declaration allows, or a required one unset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} must be a whole number from {min} to {max}, got {value:?}")]
    OutOfRange {
        name: &'static str,
        value: String,
        min: i64,
        max: i64,
    },
    #[error("{name} must be one of {choices:?}, got {value:?}")]
    NotAChoice {
        name: &'static str,
        value: String,
        choices: &'static [&'static str],
    },
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where variables are looked up: the process environment, or a map in tests.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Reads declared variables from the process environment or, in tests, from any lookup.
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Env::from_lookup(|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    /// Variables from `lookup` (a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Env {
            lookup: Box::new(lookup),
        }
    }

    /// The variable's value when it is set to something other than blanks.
    fn raw(&self, variable: &Variable) -> Option<String> {
        debug_assert!(
            VARIABLES.iter().any(|v| v.name == variable.name),
            "{} is not declared in VARIABLES",
            variable.name
        );
        (self.lookup)(variable.name).filter(|value| !value.trim().is_empty())
    }

    /// A required variable.
    pub fn required(&self, variable: &Variable) -> Result<String, ConfigError> {
        self.raw(variable).ok_or(ConfigError::Missing {
            name: variable.name,
        })
    }

    /// A text variable, or its default.
    pub fn text(&self, variable: &Variable) -> Option<String> {
        let default = match variable.value {
            Value::Text { default } => default,
            _ => None,
        };
        self.raw(variable).or_else(|| default.map(str::to_owned))
    }

    /// A JSON variable's text, unparsed (its own parser says what is wrong with it).
    pub fn json(&self, variable: &Variable) -> Option<String> {
        self.raw(variable)
    }

    /// An integer variable within its declared range, or its default (`None`: unset, no
    /// default).
    pub fn integer(&self, variable: &Variable) -> Result<Option<i64>, ConfigError> {
        let Value::Integer { default, min, max } = variable.value else {
            return Err(ConfigError::Invalid {
                name: variable.name,
                reason: "is not declared as a number".into(),
            });
        };
        let Some(raw) = self.raw(variable) else {
            return Ok(default);
        };
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|value| (min..=max).contains(value))
            .map(Some)
            .ok_or(ConfigError::OutOfRange {
                name: variable.name,
                value: raw,
                min,
                max,
            })
    }

    /// An integer variable that has a default, so always a value.
    pub fn count(&self, variable: &Variable) -> Result<u64, ConfigError> {
        let value = self.integer(variable)?.unwrap_or(0);
        Ok(u64::try_from(value).unwrap_or(0))
    }

    /// A choice variable's value (the first choice when unset).
    pub fn choice(&self, variable: &Variable) -> Result<&'static str, ConfigError> {
        let Value::OneOf { choices } = variable.value else {
            return Err(ConfigError::Invalid {
                name: variable.name,
                reason: "is not declared as a choice".into(),
            });
        };
        let Some(raw) = self.raw(variable) else {
            return Ok(choices.first().copied().unwrap_or_default());
        };
        choices
            .iter()
            .copied()
            .find(|choice| *choice == raw.trim())
            .ok_or(ConfigError::NotAChoice {
                name: variable.name,
                value: raw,
                choices,
            })
    }
}

/// The names of the variables `binary` reads.
pub fn read_by(binary: Binary) -> impl Iterator<Item = &'static str> {
    VARIABLES
        .iter()
        .filter(move |v| v.read_by.contains(&binary))
        .map(|v| v.name)
}

/// The README's configuration table.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| variable | default | allowed | read by | meaning |\n|---|---|---|---|---|\n",
    );
    for variable in VARIABLES {
        let (default, allowed) = match variable.value {
            Value::Required => ("required".to_owned(), "text".to_owned()),
            Value::Text { default } => (code_or_unset(default), "text".to_owned()),
            Value::Integer { default, min, max } => (
                code_or_unset(default.map(|d| d.to_string()).as_deref()),
                format!("{min}–{max}"),
            ),
            Value::OneOf { choices } => (
                code_or_unset(choices.first().copied()),
                choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Value::Json => ("unset".to_owned(), "JSON object".to_owned()),
        };
        let readers = variable
            .read_by
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            table,
            "| `{}` | {default} | {allowed} | {readers} | {} |",
            variable.name, variable.meaning
        );
    }
    table
}

fn code_or_unset(value: Option<&str>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| format!("`{v}`"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Variables from a list of pairs (the other unit tests use it too).
    pub(crate) fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<'static> {
        Env::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn names_are_unique_and_every_variable_has_a_reader() {
        for (i, a) in VARIABLES.iter().enumerate() {
            assert!(!a.read_by.is_empty(), "{}", a.name);
            assert!(
                VARIABLES[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            if let Value::Integer {
                default: Some(d),
                min,
                max,
            } = a.value
            {
                assert!((min..=max).contains(&d), "{}'s default", a.name);
            }
        }
    }

    #[test]
    fn integers_are_checked_against_their_declared_range() {
        assert_eq!(env(&[]).integer(&WORKER_CONCURRENCY), Ok(Some(4)));
        assert_eq!(env(&[]).integer(&JOB_RETENTION_DAYS), Ok(None));
        let set = env(&[("WORKER_CONCURRENCY", " 8 ")]);
        assert_eq!(set.integer(&WORKER_CONCURRENCY), Ok(Some(8)));
        for bad in ["0", "65", "-1", "x", "1.5"] {
            let lookup = move |name: &str| (name == "WORKER_CONCURRENCY").then(|| bad.to_owned());
            let error = Env::from_lookup(lookup)
                .integer(&WORKER_CONCURRENCY)
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("WORKER_CONCURRENCY must be a whole number from 1 to 64, got {bad:?}")
            );
        }
    }

    #[test]
    fn choices_default_to_the_first_and_refuse_others() {
        assert_eq!(env(&[]).choice(&REWARD_LEVEL_GIFTS), Ok("on"));
        assert_eq!(
            env(&[("REWARD_LEVEL_GIFTS", "off")]).choice(&REWARD_LEVEL_GIFTS),
            Ok("off")
        );
        assert!(env(&[("REWARD_LEVEL_GIFTS", "maybe")])
            .choice(&REWARD_LEVEL_GIFTS)
            .is_err());
        assert_eq!(
            env(&[("MONGODB_URI", "  ")]).required(&MONGODB_URI),
            Err(ConfigError::Missing {
                name: "MONGODB_URI"
            })
        );
        assert_eq!(env(&[]).text(&MONGODB_DATABASE).as_deref(), Some("mall"));
        assert_eq!(env(&[]).text(&EVENT_BUS_NAME), None);
    }

    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md's configuration table differs from the declared variables; \
             paste `mall env` into it:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn the_worker_reads_the_queue_and_drain_variables() {
        let names: Vec<_> = read_by(Binary::RewardWorker).collect();
        assert!(names.contains(&"WORKER_BATCH_SIZE"));
        assert!(names.contains(&"JOB_LEASE_SECONDS"));
        assert!(!names.contains(&"IDENTITY_MODE"));
    }
}
