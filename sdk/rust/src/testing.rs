//! An in-memory host for native unit tests of a function, with the host's rules: a failed
//! event leaves no effects, stream time only moves forward, and due timers fire in order.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::{Context, Event, Failure, Handler, Host, Level, Output, Timer, TimerHandler};

/// A host that keeps state, outputs, logs and timers in memory.
#[derive(Debug, Default)]
pub struct TestHost {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    config: BTreeMap<String, String>,
    timers: BTreeMap<Vec<u8>, i64>,
    outputs: Vec<Output>,
    logs: Vec<(Level, String)>,
    stream_time_ms: i64,
    next_offset: u64,
}

impl TestHost {
    /// An empty host at stream time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deploy-time configuration value.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Builds the next event of the partition, with offset and stream time filled in.
    pub fn event(
        &mut self,
        topic: &str,
        key: Option<&str>,
        value: &str,
        timestamp_ms: i64,
    ) -> Event {
        self.stream_time_ms = self.stream_time_ms.max(timestamp_ms);
        let offset = self.next_offset;
        self.next_offset += 1;
        Event {
            topic: topic.to_owned(),
            partition: 0,
            offset,
            timestamp_ms,
            stream_time_ms: self.stream_time_ms,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    /// Runs `handler` on `event`. On failure the event's state writes, outputs and timer
    /// changes are undone, as the host does.
    pub fn handle(&mut self, handler: Handler, event: &Event) -> Result<(), Failure> {
        self.transaction(|host| handler(event, &mut Context::at(host, event.timestamp_ms)))
    }

    /// Builds an event, handles it, then fires the timers its stream time made due.
    pub fn deliver(
        &mut self,
        handler: Handler,
        on_timer: TimerHandler,
        topic: &str,
        key: Option<&str>,
        value: &str,
        timestamp_ms: i64,
    ) -> Result<(), Failure> {
        let event = self.event(topic, key, value, timestamp_ms);
        self.handle(handler, &event)?;
        self.fire_due_timers(on_timer)
    }

    /// Fires every timer at or before the current stream time, in order of time and key.
    pub fn fire_due_timers(&mut self, on_timer: TimerHandler) -> Result<(), Failure> {
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, at)| **at <= self.stream_time_ms)
                .min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)))
                .map(|(key, at)| Timer {
                    key: key.clone(),
                    at_ms: *at,
                });
            let Some(timer) = due else { return Ok(()) };
            self.timers.remove(&timer.key);
            self.transaction(|host| on_timer(&timer, &mut Context::at(host, timer.at_ms)))?;
        }
    }

    /// Moves stream time forward without an event, as a later event would.
    pub fn advance_stream_time(&mut self, to_ms: i64) {
        self.stream_time_ms = self.stream_time_ms.max(to_ms);
    }

    /// Records sent so far, oldest first.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Values sent to `topic`, parsed as JSON.
    pub fn outputs_json<T: DeserializeOwned>(&self, topic: &str) -> Vec<T> {
        self.outputs
            .iter()
            .filter(|o| o.topic == topic)
            .filter_map(|o| o.value.as_deref())
            .map(|v| serde_json::from_slice(v).expect("output is JSON"))
            .collect()
    }

    /// Removes and returns the records sent so far.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// The state value under `key`, parsed as JSON.
    pub fn state_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state
            .get(key.as_bytes())
            .map(|v| serde_json::from_slice(v).expect("state is JSON"))
    }

    /// The state value under `key`, as written by [`Context::store`].
    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state
            .get(key.as_bytes())
            .map(|v| postcard::from_bytes(v).expect("state decodes"))
    }

    /// Number of state keys.
    pub fn state_len(&self) -> usize {
        self.state.len()
    }

    /// Pending timers as (key, time).
    pub fn timers(&self) -> Vec<(Vec<u8>, i64)> {
        self.timers.iter().map(|(k, at)| (k.clone(), *at)).collect()
    }

    /// Log lines written so far.
    pub fn logs(&self) -> &[(Level, String)] {
        &self.logs
    }

    fn transaction(
        &mut self,
        run: impl FnOnce(&mut Self) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let state = self.state.clone();
        let timers = self.timers.clone();
        let sent = self.outputs.len();
        let result = run(self);
        if result.is_err() {
            self.state = state;
            self.timers = timers;
            self.outputs.truncate(sent);
        }
        result
    }
}

impl Host for TestHost {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.state.insert(key.to_vec(), value.to_vec());
    }

    fn delete(&mut self, key: &[u8]) {
        self.state.remove(key);
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| start_after.is_none_or(|after| k.as_slice() > after))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn send(&mut self, output: &Output) {
        self.outputs.push(output.clone());
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    fn config(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }

    fn schedule(&mut self, key: &[u8], at_ms: i64) {
        self.timers.insert(key.to_vec(), at_ms);
    }

    fn cancel(&mut self, key: &[u8]) {
        self.timers.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
        let key = event.key_str().unwrap_or("none");
        let n: u64 = ctx.get_json(key)?.unwrap_or(0);
        ctx.set_json(key, &(n + 1));
        if event.value_str() == Some("bad") {
            return Err(Failure::reject("bad value"));
        }
        ctx.emit("out", None, b"counted");
        ctx.schedule_timer(key, event.timestamp_ms + 10);
        Ok(())
    }

    fn flush(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
        ctx.emit("flushed", Some(&timer.key), timer.at_ms.to_string());
        Ok(())
    }

    #[test]
    fn a_failed_event_leaves_no_effects() {
        let mut host = TestHost::new();
        let ok = host.event("in", Some("a"), "good", 1);
        let bad = host.event("in", Some("a"), "bad", 2);
        host.handle(count, &ok).expect("first event is handled");
        assert_eq!(host.handle(count, &bad), Err(Failure::reject("bad value")));
        assert_eq!(host.state_json::<u64>("a"), Some(1));
        assert_eq!(host.outputs().len(), 1);
    }

    #[test]
    fn timers_fire_once_stream_time_passes_them() {
        let mut host = TestHost::new();
        host.deliver(count, flush, "in", Some("a"), "x", 100)
            .expect("handled");
        assert!(host.outputs_json::<i64>("flushed").is_empty());
        host.deliver(count, flush, "in", Some("b"), "x", 111)
            .expect("handled");
        assert_eq!(host.outputs_json::<i64>("flushed"), vec![110]);
        assert_eq!(host.timers(), vec![(b"b".to_vec(), 121)]);
    }

    #[test]
    fn stream_time_never_goes_back() {
        let mut host = TestHost::new();
        host.event("in", None, "x", 50);
        let late = host.event("in", None, "x", 20);
        assert_eq!(late.timestamp_ms, 20);
        assert_eq!(late.stream_time_ms, 50);
        assert_eq!(late.offset, 1);
    }

    #[test]
    fn typed_state_round_trips() {
        let mut host = TestHost::new();
        let mut ctx = Context::new(&mut host);
        ctx.store("k", &(3u32, "three".to_owned(), vec![1.5f64]));
        let back: Option<(u32, String, Vec<f64>)> = ctx.load("k").expect("decodes");
        assert_eq!(back, Some((3, "three".to_owned(), vec![1.5])));
        ctx.set("bad", b"\xff\xff\xff\xff\xff\xff");
        assert!(ctx.load::<(u32, String)>("bad").is_err());
        assert_eq!(
            host.state::<(u32, String, Vec<f64>)>("k").map(|v| v.0),
            Some(3)
        );
    }

    #[test]
    fn scan_pages_through_a_prefix() {
        let mut host = TestHost::new();
        for i in 0..600 {
            host.set(format!("k/{i:04}").as_bytes(), b"v");
        }
        host.set(b"other", b"v");
        let ctx = Context::new(&mut host);
        let all = ctx.scan("k/", usize::MAX);
        assert_eq!(all.len(), 600);
        assert_eq!(all[599].0, b"k/0599".to_vec());
        assert_eq!(ctx.scan("k/", 10).len(), 10);
    }
}
