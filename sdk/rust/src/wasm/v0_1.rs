//! The component side of the SDK on contract 0.1.0 (the `contract-0-1` feature): generated
//! bindings of that world and the glue that turns a batch call into one handler call per
//! event, each effect one host call.

pub mod bindings {
    wit_bindgen::generate!({
        world: "function",
        path: "../../wit/0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_function",
        default_bindings_module: "::streamfn::wasm::bindings",
        runtime_path: "::streamfn::wasm::rt",
        // Imports borrow what they send, so emitting copies nothing on the guest side.
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

pub use bindings::export_function;
pub use bindings::exports::streamfn::function::handler::Guest;
pub use bindings::streamfn::function::types::{Event as WitEvent, FiredTimer, Outcome};

/// What the handler export is called with.
pub type Batch = Vec<WitEvent>;
/// What it returns.
pub type Handled = Vec<Outcome>;

use bindings::streamfn::function::{config, emit, log, state, timers, types};

use crate::{Context, Event, Failure, Handler, Header, Host, Level, Output, Timer, TimerHandler};

/// The Streamfn host, reached through the component's imports.
struct WasmHost;

impl Host for WasmHost {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        state::get(key)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        state::set(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        state::delete(key);
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        state::scan(prefix, start_after, limit)
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn send(&mut self, output: &Output) {
        let headers: Vec<types::HeaderParam<'_>> = output
            .headers
            .iter()
            .map(|h| types::HeaderParam {
                key: &h.key,
                value: &h.value,
            })
            .collect();
        emit::send(emit::Output {
            topic: &output.topic,
            key: output.key.as_deref(),
            value: output.value.as_deref(),
            headers: &headers,
            timestamp_ms: output.timestamp_ms,
        });
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::write(level, message);
    }

    fn config(&self, key: &str) -> Option<String> {
        super::configured(key, config::all)
    }

    fn schedule(&mut self, key: &[u8], at_ms: i64) {
        timers::schedule(key, at_ms);
    }

    fn cancel(&mut self, key: &[u8]) {
        timers::cancel(key);
    }
}

fn event(raw: WitEvent) -> Event {
    Event {
        topic: raw.topic,
        partition: raw.partition,
        offset: raw.offset,
        timestamp_ms: raw.timestamp_ms,
        stream_time_ms: raw.stream_time_ms,
        key: raw.key,
        value: raw.value,
        headers: raw
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

/// Runs `handler` on each event in order and collects the outcomes.
pub fn handle_batch(events: Batch, handler: Handler) -> Handled {
    let mut host = WasmHost;
    events
        .into_iter()
        .map(|raw| {
            let event = event(raw);
            match handler(&event, &mut Context::at(&mut host, event.timestamp_ms)) {
                Ok(()) => Outcome::Ok,
                Err(Failure::Retry(reason)) => Outcome::Retry(reason),
                Err(Failure::Reject(reason)) => Outcome::Reject(reason),
            }
        })
        .collect()
}

/// Runs `on_timer` on each fired timer in order; the first failure ends the call.
pub fn handle_timers(fired: Vec<FiredTimer>, on_timer: TimerHandler) -> Result<(), String> {
    let mut host = WasmHost;
    for raw in fired {
        let timer = Timer {
            key: raw.key,
            at_ms: raw.at_ms,
        };
        on_timer(&timer, &mut Context::at(&mut host, timer.at_ms)).map_err(|f| f.to_string())?;
    }
    Ok(())
}
