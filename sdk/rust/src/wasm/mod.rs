//! The component side of the SDK: the bindings of the contract version the crate is built
//! for (0.2.0, or 0.1.0 with the `contract-0-1` feature) and the glue between a batch call
//! and one handler call per event. Used by [`crate::export!`].

#![allow(missing_docs)]

#[cfg(feature = "contract-0-1")]
mod v0_1;
#[cfg(feature = "contract-0-1")]
pub use v0_1::*;

#[cfg(not(feature = "contract-0-1"))]
mod v0_2;
#[cfg(not(feature = "contract-0-1"))]
pub use v0_2::*;

pub use wit_bindgen::rt;

/// The deploy-time configuration value under `key`. An instance serves one deployment
/// version, whose configuration never changes, so `all` crosses into the host once
/// instead of on every event.
fn configured(key: &str, all: fn() -> Vec<(String, String)>) -> Option<String> {
    static CONFIG: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| all().into_iter().collect())
        .get(key)
        .cloned()
}
