//! Test support shared by every crate's integration tests, and by the end-to-end tests in
//! `tests/tests/`: the real test database with every command counted, seeding, local tokens, and
//! the real function binaries under the Lambda emulator.
//!
//! Tests run against the real servers that `infra/with-test-services.sh` (what `make test` uses)
//! starts; each test takes a fresh database so tests run in parallel. This crate is test code:
//! helpers panic with a message that says what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod db;
pub mod emulator;
pub mod hostile;
pub mod legacy;
pub mod replay;
pub mod seed;
pub mod server;
pub mod stats;
pub mod world;
