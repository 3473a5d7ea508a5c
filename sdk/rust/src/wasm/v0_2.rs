//! The component side of the SDK on contract 0.2.0: generated bindings of that world, the
//! reading of a batch buffer into events, and a host that serves state reads of a call from
//! a cache and hands the call's effects back in one buffer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub mod bindings {
    wit_bindgen::generate!({
        world: "function",
        path: "../../wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_function",
        default_bindings_module: "::streamfn::wasm::bindings",
        runtime_path: "::streamfn::wasm::rt",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

pub use bindings::export_function;
pub use bindings::exports::streamfn::function::handler::Guest;
pub use bindings::streamfn::function::types::{FailedEvent, Failure as WitFailure, FiredTimer};

use bindings::streamfn::function::{config, effects, log, state};

use crate::{Context, Event, Failure, Handler, Header, Host, Level, Output, Timer, TimerHandler};

/// What the handler export is called with: the batch buffer.
pub type Batch = Vec<u8>;
/// What it returns: the events that did not succeed.
pub type Handled = Vec<FailedEvent>;

/// Effects held before they are handed to the host, at most; more are applied at once.
const HELD_EFFECTS: usize = 1 << 20;

/// The length of an absent `bytes?`.
const NONE: u32 = u32::MAX;

/// Hashes the keys of a call's cache: FNV-1a, a few instructions a byte. A cache lives
/// for one call of at most a batch of events, so keys chosen to collide can slow that
/// call but not the next.
struct KeyHasher(u64);

impl Default for KeyHasher {
    /// FNV-1a's offset basis.
    fn default() -> Self {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Values read or written during a call, by key; `None` for a key known to be absent.
type Cache = HashMap<Vec<u8>, Option<Vec<u8>>, BuildHasherDefault<KeyHasher>>;

/// Puts `value` under `key` in `cache`, reusing the memory of an entry already there.
fn cache_put(cache: &mut Cache, key: &[u8], value: Option<&[u8]>) {
    match (cache.get_mut(key), value) {
        (Some(Some(held)), Some(value)) => {
            held.clear();
            held.extend_from_slice(value);
        }
        (Some(held), value) => *held = value.map(<[u8]>::to_vec),
        (None, value) => {
            cache.insert(key.to_vec(), value.map(<[u8]>::to_vec));
        }
    }
}

/// The Streamfn host of one call: reads go through a cache that also holds the call's own
/// writes, and effects are written into a buffer applied in one crossing.
#[derive(Default)]
struct BatchHost {
    /// Values read or written during the call.
    cache: RefCell<Cache>,
    /// Effects not yet applied, encoded.
    held: RefCell<Vec<u8>>,
}

impl BatchHost {
    /// Hands the held effects to the host.
    fn apply(&self) {
        let mut held = self.held.borrow_mut();
        if !held.is_empty() {
            effects::apply(&held);
            held.clear();
        }
    }

    fn hold(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let full = {
            let mut held = self.held.borrow_mut();
            write(&mut held);
            held.len() >= HELD_EFFECTS
        };
        if full {
            self.apply();
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => put_bytes(out, bytes),
        None => put_u32(out, NONE),
    }
}

impl Host for BatchHost {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(value) = self.cache.borrow().get(key) {
            return value.clone();
        }
        let value = state::get(key);
        self.cache.borrow_mut().insert(key.to_vec(), value.clone());
        value
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.hold(|out| {
            out.push(0);
            put_bytes(out, key);
            put_bytes(out, value);
        });
        cache_put(self.cache.get_mut(), key, Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.hold(|out| {
            out.push(1);
            put_bytes(out, key);
        });
        cache_put(self.cache.get_mut(), key, None);
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        // The host merges what it was handed with what is stored.
        self.apply();
        state::scan(prefix, start_after, limit)
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn send(&mut self, output: &Output) {
        self.hold(|out| {
            out.push(2);
            put_bytes(out, output.topic.as_bytes());
            put_optional(out, output.key.as_deref());
            put_optional(out, output.value.as_deref());
            put_u32(out, output.headers.len() as u32);
            for header in &output.headers {
                put_bytes(out, header.key.as_bytes());
                put_bytes(out, &header.value);
            }
            match output.timestamp_ms {
                Some(ms) => {
                    out.push(1);
                    out.extend_from_slice(&ms.to_le_bytes());
                }
                None => out.push(0),
            }
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
        self.hold(|out| {
            out.push(3);
            put_bytes(out, key);
            out.extend_from_slice(&at_ms.to_le_bytes());
        });
    }

    fn cancel(&mut self, key: &[u8]) {
        self.hold(|out| {
            out.push(4);
            put_bytes(out, key);
        });
    }
}

/// Reads a batch buffer the host wrote; the host writes nothing else, so a buffer that
/// does not follow the encoding is a broken host and traps.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let bytes = &self.buf[self.at..self.at + n];
        self.at += n;
        bytes
    }

    fn u32(&mut self) -> u32 {
        let b = self.take(4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn u64(&mut self) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(self.take(8));
        u64::from_le_bytes(word)
    }

    fn bytes(&mut self) -> &'a [u8] {
        let len = self.u32() as usize;
        self.take(len)
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    fn optional(&mut self) -> Option<Vec<u8>> {
        match self.u32() {
            NONE => None,
            len => Some(self.take(len as usize).to_vec()),
        }
    }
}

/// Runs `handler` on each event of `batch` in order and lists those that failed.
pub fn handle_batch(batch: Batch, handler: Handler) -> Handled {
    let mut read = Reader { buf: &batch, at: 0 };
    let partition = read.u32();
    let topics: Vec<String> = (0..read.u32()).map(|_| read.text()).collect();
    let count = read.u32();
    // Room for a key per event, so the cache does not grow step by step.
    let mut host = BatchHost {
        cache: RefCell::new(Cache::with_capacity_and_hasher(
            count as usize,
            Default::default(),
        )),
        held: RefCell::default(),
    };
    let mut failed = Vec::new();
    for index in 0..count {
        let topic = topics[read.u32() as usize].clone();
        let offset = read.u64();
        let timestamp_ms = read.u64() as i64;
        let stream_time_ms = read.u64() as i64;
        let key = read.optional();
        let value = read.optional();
        let headers = (0..read.u32())
            .map(|_| Header {
                key: read.text(),
                value: read.bytes().to_vec(),
            })
            .collect();
        let event = Event {
            topic,
            partition,
            offset,
            timestamp_ms,
            stream_time_ms,
            key,
            value,
            headers,
        };
        let failure = match handler(&event, &mut Context::at(&mut host, timestamp_ms)) {
            Ok(()) => continue,
            Err(Failure::Retry(reason)) => WitFailure::Retry(reason),
            Err(Failure::Reject(reason)) => WitFailure::Reject(reason),
        };
        failed.push(FailedEvent { index, failure });
    }
    host.apply();
    failed
}

/// Runs `on_timer` on each fired timer in order; the first failure ends the call.
pub fn handle_timers(fired: Vec<FiredTimer>, on_timer: TimerHandler) -> Result<(), String> {
    let mut host = BatchHost::default();
    for raw in fired {
        let timer = Timer {
            key: raw.key,
            at_ms: raw.at_ms,
        };
        on_timer(&timer, &mut Context::at(&mut host, timer.at_ms)).map_err(|f| f.to_string())?;
    }
    host.apply();
    Ok(())
}
