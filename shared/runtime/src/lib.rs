//! What the mall's binaries share, and nothing else: the one table of environment variables
//! and the parsers of the settings several binaries read ([`env`], [`config`]), logging and the
//! metrics' names and recorder ([`telemetry`]), and one start-up ([`startup::start`]).
//!
//! It sits above the store and below the binaries: `domain ← store ← runtime ← functions, cli`.

pub mod config;
pub mod env;
pub mod startup;
pub mod telemetry;

pub use env::{ConfigError, Env};
pub use startup::{start, StartError, Started};
