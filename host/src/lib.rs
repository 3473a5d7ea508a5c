//! Streamfn's host: runs user functions, compiled to WebAssembly components, over topics
//! of the embedded log. The data path reads as the module list does:
//! a runner fetches a partition's records from the log, the dispatcher runs them through
//! an instance of the function under its limits, and the commit writes outputs, state and
//! offsets in one transaction. `fnctl` (the binary) drives it through the admin API.

#![deny(unsafe_code)]

pub mod api;
pub mod bindings;
pub mod cache;
pub mod cli;
pub mod client;
pub mod dispatch;
pub mod effects;
pub mod embedded;
pub mod engine;
pub mod failure;
pub mod instance;
pub mod kafka;
pub mod limits;
pub mod logbook;
pub mod metrics;
pub mod partitioner;
pub mod project;
pub mod record;
pub mod registry;
pub mod replica;
pub mod runner;
pub mod source;
pub mod state;
pub mod wire;
