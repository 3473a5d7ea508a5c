//! The demo's parts, shared with the end-to-end tests: the generators of synthetic
//! traffic with planted patterns (payments, logs and activity; user commands; sensor
//! readings; the shop's orders), a replica driven through the real `fnctl`, the example functions' topology,
//! and the checks a run must pass.

pub mod check;
pub mod generate;
pub mod orders;
pub mod replica;
pub mod sensors;
pub mod topology;
pub mod users;
