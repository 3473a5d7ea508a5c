//! The sandbox functions run in: the wasmtime engine (component model, pooling allocator,
//! fuel, epochs) and its cache of compiled components, the bindings of the contract, and
//! live instances with the host side of every import and the WASI they are allowed. Knows
//! nothing of batches, logs or commits.

pub mod bindings;
pub mod cache;
pub mod engine;
mod imports;
pub mod instance;
mod wasi;
mod wire;

pub use self::engine::{Engine, LoadedComponent, MAX_INSTANCES, Tuning, sha256_hex};
pub use self::instance::{
    CallFailure, CallResult, Instance, InstanceConfig, LogLine, LogSink, PoolFull,
};
pub use self::wasi::seed;
