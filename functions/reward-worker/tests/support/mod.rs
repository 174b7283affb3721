//! The worker's tests share the test kit's world (`mall_testkit::world`).

#![allow(unused_imports)] // shared by several test binaries

pub use mall_testkit::world::*;
