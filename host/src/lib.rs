//! Streamfn's host: runs user functions, compiled to WebAssembly components, over topics
//! of a log. The modules are layers, each using only those listed before it:
//!
//! - [`model`]: records, events, effects and commits, deployments, limits, failures;
//! - [`schema`]: values in a schema registry's formats, decoded for the function;
//! - [`state`]: a partition's state as a batch sees it, over what is committed;
//! - [`sandbox`]: the wasmtime engine, components and instances with their imports;
//! - [`dispatch`]: a batch through an instance: timers, bisection, dead letters;
//! - [`registry`], [`metrics`], [`logbook`]: deployments, counters, guest log lines;
//! - [`runner`]: a function's thread, fetching from its source and committing;
//! - [`log`]: the seam to the log underneath, the embedded one or Kafka;
//! - [`replica`]: all of it put together for `fnctl serve`;
//! - [`api`]: the admin HTTP API over a replica.

#![deny(unsafe_code)]

pub mod api;
pub mod dispatch;
pub mod log;
pub mod logbook;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod replica;
pub mod runner;
pub mod sandbox;
pub mod schema;
pub mod state;

#[cfg(test)]
mod layers;
