//! Streamfn's Rust SDK: a function is a plain Rust `fn` over one event at a time.
//!
//! ```no_run
//! use streamfn::{Context, Event, Failure};
//!
//! #[derive(serde::Deserialize)]
//! struct Payment { account: String, amount: f64 }
//!
//! fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
//!     let payment: Payment = event.json()?;
//!     let total: f64 = ctx.get_json(&payment.account)?.unwrap_or(0.0) + payment.amount;
//!     ctx.set_json(&payment.account, &total);
//!     if total > 10_000.0 {
//!         ctx.emit_json("large-spenders", Some(&payment.account), &total);
//!     }
//!     Ok(())
//! }
//!
//! streamfn::export!(handle);
//! ```
//!
//! Built for `wasm32-wasip2`, [`export!`] turns the function into a component of the
//! `streamfn:function` world. Built natively, it is an ordinary function that unit tests
//! call through [`testing::TestHost`], without a host and without wasm.
//!
//! This crate is not the host: it never sees offsets being committed, batches being
//! split, or records being dead-lettered. It only says what one event should do.

// The generated bindings name this crate by its own name, as guests do.
extern crate self as streamfn;

#[cfg(any(target_arch = "wasm32", test))]
mod blocks;
mod context;
mod event;
mod failure;
pub mod testing;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use context::{Context, Host, Level, Output};
pub use event::{Event, Header, Timer};
pub use failure::Failure;

/// The component's allocator, unless the crate is built without the `allocator` feature
/// (for a function that brings its own).
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: blocks::Blocks = blocks::Blocks::new();

/// The signature of an event handler.
pub type Handler = fn(&Event, &mut Context) -> Result<(), Failure>;

/// The signature of a timer handler, called for each stream-time timer that came due.
pub type TimerHandler = fn(&Timer, &mut Context) -> Result<(), Failure>;

/// A timer handler for functions that schedule no timers.
pub fn no_timers(timer: &Timer, _ctx: &mut Context) -> Result<(), Failure> {
    Err(Failure::reject(format!(
        "a timer fired ({} at {} ms) but the function handles none",
        String::from_utf8_lossy(&timer.key),
        timer.at_ms
    )))
}

/// Exports a handler (and optionally a timer handler) as the function's component exports.
///
/// `streamfn::export!(handle)` or `streamfn::export!(handle, timers = on_timer)`.
/// Outside `wasm32` it expands to nothing, so the same crate builds and tests natively.
#[macro_export]
macro_rules! export {
    ($handle:path) => {
        $crate::export!($handle, timers = $crate::no_timers);
    };
    ($handle:path, timers = $timers:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct StreamfnFunction;
            impl $crate::wasm::Guest for StreamfnFunction {
                fn handle(batch: $crate::wasm::Batch) -> $crate::wasm::Handled {
                    $crate::wasm::handle_batch(batch, $handle)
                }
                fn on_timers(
                    timers: ::std::vec::Vec<$crate::wasm::FiredTimer>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::wasm::handle_timers(timers, $timers)
                }
            }
    $crate::wasm::export_function!(StreamfnFunction with_types_in $crate::wasm::bindings);
        };
    };
}
