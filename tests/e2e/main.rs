//! End-to-end tests: the real `fnctl` binary, as a user runs it, with real guest
//! components built from `guests/` (by `scripts/build`, once per test run).

mod crash;
mod deploy;
mod examples;
mod failures;
mod logs;
mod metrics;
mod redeploy;
mod sandbox;
mod support;
