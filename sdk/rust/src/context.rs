//! The handler's view of the host: state, output records, configuration, logs and timers.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Failure, Header};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine-grained detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the function handled.
    Warn,
    /// Something failed.
    Error,
}

/// A record to send to an output topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// A topic declared as an output at deploy.
    pub topic: String,
    /// Record key; it picks the partition.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Record headers.
    pub headers: Vec<Header>,
    /// Record timestamp; [`Context`] fills in the handled event's timestamp when unset.
    pub timestamp_ms: Option<i64>,
}

impl Output {
    /// A record for `topic` with no key, value or headers yet.
    pub fn new(topic: impl Into<String>) -> Self {
        Output {
            topic: topic.into(),
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl AsRef<[u8]>) -> Self {
        self.value = Some(value.as_ref().to_vec());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.as_ref().to_vec(),
        });
        self
    }
}

/// What the SDK needs from whatever runs the function: the Streamfn host inside wasm, or
/// [`crate::testing::TestHost`] in a native unit test.
pub trait Host {
    /// The state value under `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`.
    fn set(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]);
    /// Up to `limit` entries with keys starting with `prefix`, after `start_after`.
    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Sends a record to an output topic.
    fn send(&mut self, output: &Output);
    /// Writes a log line.
    fn log(&mut self, level: Level, message: &str);
    /// A deploy-time configuration value.
    fn config(&self, key: &str) -> Option<String>;
    /// Schedules a stream-time timer under `key`.
    fn schedule(&mut self, key: &[u8], at_ms: i64);
    /// Cancels the timer under `key`.
    fn cancel(&mut self, key: &[u8]);
}

/// Handed to every handler call: the partition's state, output topics, configuration,
/// logs and timers.
pub struct Context<'a> {
    host: &'a mut dyn Host,
    now_ms: Option<i64>,
}

impl<'a> Context<'a> {
    /// A context over `host`.
    pub fn new(host: &'a mut dyn Host) -> Self {
        Context { host, now_ms: None }
    }

    /// A context for handling something that happened at `timestamp_ms`: records sent
    /// through it carry that timestamp unless they set their own.
    pub fn at(host: &'a mut dyn Host, timestamp_ms: i64) -> Self {
        Context {
            host,
            now_ms: Some(timestamp_ms),
        }
    }

    /// The raw state value under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.host.get(key.as_ref())
    }

    /// The state value under `key`, parsed as JSON. A value that does not parse rejects
    /// the event being handled.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<T>, Failure> {
        let key = key.as_ref();
        let Some(raw) = self.host.get(key) else {
            return Ok(None);
        };
        serde_json::from_slice(&raw).map(Some).map_err(|err| {
            Failure::reject(format!(
                "state key {:?} does not hold the expected JSON: {err}",
                String::from_utf8_lossy(key)
            ))
        })
    }

    /// The state value under `key`, decoded from the compact binary form [`Context::store`]
    /// writes. Faster and smaller than JSON; use [`Context::get_json`] for state other
    /// tools should read. A value that does not decode rejects the event being handled.
    pub fn load<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Failure> {
        let key = key.as_ref();
        let Some(raw) = self.host.get(key) else {
            return Ok(None);
        };
        postcard::from_bytes(&raw).map(Some).map_err(|err| {
            Failure::reject(format!(
                "state key {:?} does not hold the expected value: {err}",
                String::from_utf8_lossy(key)
            ))
        })
    }

    /// Stores `value` under `key` in a compact binary form (postcard), read back with
    /// [`Context::load`].
    pub fn store<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) {
        // Encoding plain data into a Vec only fails for types serde cannot describe
        // without a length, a bug in the function's own types that should trap.
        let bytes = postcard::to_allocvec(value).expect("value encodes");
        self.host.set(key.as_ref(), &bytes);
    }

    /// Stores raw bytes under `key`.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.host.set(key.as_ref(), value.as_ref());
    }

    /// Stores `value` as JSON under `key`.
    pub fn set_json<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) {
        self.host.set(key.as_ref(), &to_json(value));
    }

    /// Removes `key` from state.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.host.delete(key.as_ref());
    }

    /// Every state entry whose key starts with `prefix`, in key order, fetched from the
    /// host a page at a time, stopping after `max` entries.
    pub fn scan(&self, prefix: impl AsRef<[u8]>, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        const PAGE: usize = 256;
        let prefix = prefix.as_ref();
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        while entries.len() < max {
            let want = (max - entries.len()).min(PAGE);
            let after = entries.last().map(|(k, _)| k.as_slice());
            let page = self.host.scan(prefix, after, want as u32);
            let done = page.len() < want;
            entries.extend(page);
            if done {
                break;
            }
        }
        entries
    }

    /// Sends `value` with an optional key to the output topic `topic`.
    pub fn emit(&mut self, topic: &str, key: Option<&[u8]>, value: impl AsRef<[u8]>) {
        let mut output = Output::new(topic).value(value);
        output.key = key.map(<[u8]>::to_vec);
        output.timestamp_ms = self.now_ms;
        self.host.send(&output);
    }

    /// Sends `value` serialised as JSON to `topic`, keyed by `key`.
    pub fn emit_json<T: Serialize + ?Sized>(&mut self, topic: &str, key: Option<&str>, value: &T) {
        self.emit(topic, key.map(str::as_bytes), to_json(value));
    }

    /// Sends a fully built record (with headers).
    pub fn send(&mut self, output: &Output) {
        if output.timestamp_ms.is_none() && self.now_ms.is_some() {
            let mut stamped = output.clone();
            stamped.timestamp_ms = self.now_ms;
            self.host.send(&stamped);
        } else {
            self.host.send(output);
        }
    }

    /// The deploy-time configuration value under `key`.
    pub fn config(&self, key: &str) -> Option<String> {
        self.host.config(key)
    }

    /// The configuration value under `key` parsed as `T`, or `default` when it is absent.
    /// A value that does not parse rejects the event, naming the key.
    pub fn config_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, Failure> {
        match self.host.config(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| Failure::reject(format!("config {key}={raw:?} does not parse"))),
        }
    }

    /// Writes a log line at `level`.
    pub fn log(&mut self, level: Level, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Writes an info log line.
    pub fn info(&mut self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Writes a warning log line.
    pub fn warn(&mut self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Schedules the timer `key` for stream time `at_ms`, replacing any timer of that key.
    pub fn schedule_timer(&mut self, key: impl AsRef<[u8]>, at_ms: i64) {
        self.host.schedule(key.as_ref(), at_ms);
    }

    /// Cancels the timer `key`.
    pub fn cancel_timer(&mut self, key: impl AsRef<[u8]>) {
        self.host.cancel(key.as_ref());
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising plain data to JSON only fails for maps with non-string keys, a bug in
    // the function's own types that should surface as a trap, like any other panic.
    serde_json::to_vec(value).expect("value serialises to JSON")
}
