//! End-to-end tests on a real Apache Kafka broker (a single-node KRaft broker each test
//! starts with `scripts/kafka`): the real `fnctl` binary, real guests, real clients.

mod broker;
mod canary;
mod examples;
mod failover;
mod faults;
mod patterns;
#[path = "../e2e/registry.rs"]
mod registry;
mod replay;
mod restart;
#[path = "../e2e/scenarios.rs"]
mod scenarios;
mod secured;
mod standby;
mod state;
#[path = "../e2e/support.rs"]
mod support;
