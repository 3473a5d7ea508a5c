//! End-to-end tests: the real `fnctl` binary, as a user runs it, with real guest
//! components built from `guests/` (by `scripts/build`, once per test run).

mod canary;
mod conformance;
mod crash;
mod deploy;
mod examples;
mod failures;
mod formats;
mod languages;
mod logs;
mod metrics;
mod patterns;
mod ports;
mod produce;
mod redeploy;
mod registry;
mod replay;
mod sandbox;
mod scale;
mod scenarios;
mod schemas;
mod state;
mod storage;
mod support;
mod workers;
