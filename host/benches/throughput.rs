//! Throughput of functions on one core: the same handler compiled natively, run as a wasm
//! component by the dispatcher (state in memory), and run end to end on the embedded log
//! (fetch, dispatch, durable commit), all in one process so the numbers compare.
//!
//! Run with `cargo bench -p streamfn-host --bench throughput` after `scripts/build`.
//! `STREAMFN_BENCH_EVENTS` sets the number of events (default 200000), and
//! `STREAMFN_BENCH_PARTS` the parts to run (native, wasm, e2e; all by default).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamfn::{Context, Event, Failure, Host, Level, Output};
use streamfn_host::dispatch::Batch;
use streamfn_host::log::embedded::LogConfig;
use streamfn_host::log::{Mode, NewTopic};
use streamfn_host::model::deployment::{DeploySpec, StartFrom};
use streamfn_host::model::event::InputEvent;
use streamfn_host::model::limits::Limits;
use streamfn_host::model::record::Record;
use streamfn_host::replica::Replica;
use streamfn_host::sandbox::Engine;
use streamfn_host::state::PartitionState;
use support::Shared;

type Handler = fn(&Event, &mut Context) -> Result<(), Failure>;

/// A bare in-memory host for the native runs: what a handler costs without a sandbox.
#[derive(Default)]
struct NativeHost {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    config: BTreeMap<String, String>,
    outputs: usize,
}

impl Host for NativeHost {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.state.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.state.remove(key);
    }
    fn scan(&self, prefix: &[u8], _after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn send(&mut self, output: &Output) {
        std::hint::black_box(output);
        self.outputs += 1;
    }
    fn log(&mut self, _level: Level, _message: &str) {}
    fn config(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
    fn schedule(&mut self, _key: &[u8], _at_ms: i64) {}
    fn cancel(&mut self, _key: &[u8]) {}
}

/// A workload: input topics with their records in order.
struct Workload {
    name: &'static str,
    guest: &'static str,
    native: Handler,
    inputs: Vec<(&'static str, Vec<Record>)>,
    outputs: Vec<&'static str>,
}

impl Workload {
    fn events(&self) -> Vec<InputEvent> {
        let mut events = Vec::new();
        for (topic, records) in &self.inputs {
            for (offset, record) in records.iter().enumerate() {
                events.push(InputEvent {
                    topic: (*topic).to_owned(),
                    offset: offset as u64,
                    record: record.clone(),
                });
            }
        }
        events
    }

    fn len(&self) -> usize {
        self.inputs.iter().map(|(_, r)| r.len()).sum()
    }
}

fn workloads(events: usize) -> Vec<Workload> {
    // About 50 transactions per customer, as in the demo.
    let data = streamfn_demo::generate::generate(3, (events / 50).max(1));
    let profiles: Vec<Record> = data
        .customer_profiles
        .iter()
        .map(|v| support::record(v, "customer_id"))
        .collect();
    let transactions: Vec<Record> = data
        .transactions
        .iter()
        .take(events)
        .map(|v| support::record(v, "customer_id"))
        .collect();
    vec![
        Workload {
            name: "passthrough",
            guest: "passthrough",
            native: passthrough::handle,
            inputs: vec![("transactions", transactions.clone())],
            outputs: vec!["out"],
        },
        Workload {
            name: "fraud-scorer",
            guest: "fraud_scorer",
            native: fraud_scorer::handle,
            inputs: vec![
                ("customer-profiles", profiles),
                ("transactions", transactions),
            ],
            outputs: vec!["fraud-alerts"],
        },
    ]
}

fn to_sdk_event(input: &InputEvent) -> Event {
    Event {
        topic: input.topic.clone(),
        partition: 0,
        offset: input.offset,
        timestamp_ms: input.record.timestamp_ms,
        stream_time_ms: input.record.timestamp_ms,
        key: input.record.key.clone(),
        value: input.record.value.clone(),
        headers: Vec::new(),
    }
}

/// The handler called natively, one event at a time, as the SDK's glue does in wasm.
fn native(workload: &Workload) -> Duration {
    let events: Vec<Event> = workload.events().iter().map(to_sdk_event).collect();
    let mut host = NativeHost::default();
    let started = Instant::now();
    for event in &events {
        let _ = (workload.native)(event, &mut Context::at(&mut host, event.timestamp_ms));
    }
    std::hint::black_box(host.outputs);
    started.elapsed()
}

fn guest_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build first",
        path.display()
    );
    path
}

/// The component run by the dispatcher over in-memory state, batches of 500.
fn sandboxed(engine: &Arc<Engine>, workload: &Workload) -> Duration {
    let bytes = std::fs::read(guest_path(workload.guest)).expect("read guest");
    let component = engine.load(&bytes).expect("load guest");
    let mut dispatcher = support::dispatcher(engine, component, &workload.outputs);
    let events = workload.events();
    let batches: Vec<Vec<InputEvent>> = events.chunks(500).map(<[InputEvent]>::to_vec).collect();
    let committed = Shared::default();
    let started = Instant::now();
    for chunk in batches {
        let expected = chunk.len();
        let batch = Batch {
            partition: 0,
            events: chunk,
            stream_time_ms: i64::MIN,
            retries_spent: None,
        };
        let state = PartitionState::new(Box::new(committed.clone()));
        let done = dispatcher.run(state, batch).expect("batch runs");
        assert_eq!(done.report.processed, expected);
        committed.apply(done.state.accepted.state);
    }
    started.elapsed()
}

/// The function deployed on a replica of the embedded log: fetch, dispatch and a durable
/// commit per batch, on the runner's one thread.
fn end_to_end(workload: &Workload) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let replica =
        Replica::open(dir.path(), Mode::Embedded(LogConfig::default()), "bench").expect("replica");
    for (topic, records) in &workload.inputs {
        let topic_spec = NewTopic {
            name: (*topic).to_owned(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
        };
        replica.log().create_topic(&topic_spec).expect("topic");
        for chunk in records.chunks(5000) {
            let placed: Vec<(Option<u32>, Record)> =
                chunk.iter().map(|r| (Some(0), r.clone())).collect();
            replica.log().append(topic, placed, None).expect("append");
        }
    }
    let bytes = std::fs::read(guest_path(workload.guest)).expect("read guest");
    let sha256 = replica.upload(&bytes, None).expect("upload");
    let started = Instant::now();
    let deployment = replica
        .deploy(DeploySpec {
            name: workload.name.to_owned(),
            component: sha256,
            inputs: workload
                .inputs
                .iter()
                .map(|(t, _)| (*t).to_owned())
                .collect(),
            outputs: workload.outputs.iter().map(|s| (*s).to_owned()).collect(),
            dlq: None,
            config: BTreeMap::new(),
            limits: Limits::default(),
            start: StartFrom::Earliest,
        })
        .expect("deploy");
    let caught_up = || {
        let partitions = replica
            .log()
            .partition_status(&deployment)
            .expect("offsets");
        workload.inputs.iter().all(|(topic, records)| {
            partitions
                .iter()
                .any(|p| p.topic == *topic && p.committed == records.len() as u64)
        })
    };
    while !caught_up() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    replica.shutdown();
    elapsed
}

fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let events: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // `STREAMFN_BENCH_PARTS=e2e` (or native, wasm, comma-separated) runs only those parts.
    let parts = std::env::var("STREAMFN_BENCH_PARTS").ok();
    let engine = Engine::new(None).expect("engine");
    println!("events per run: {events} (best of 3 runs each; one core)");
    println!(
        "{:<14} {:>14} {:>14} {:>14} {:>12}",
        "function", "native ev/s", "wasm ev/s", "end-to-end", "wasm/native"
    );
    for workload in workloads(events) {
        let n = workload.len();
        let best = |run: &dyn Fn() -> Duration| (0..3).map(|_| run()).min().unwrap_or_default();
        let wanted = |part: &str| {
            parts
                .as_deref()
                .is_none_or(|p| p.split(',').any(|x| x == part))
        };
        let measure = |part: &str, run: &dyn Fn() -> Duration| {
            if wanted(part) {
                rate(n, best(run))
            } else {
                f64::NAN
            }
        };
        let native = measure("native", &|| native(&workload));
        let wasm = measure("wasm", &|| sandboxed(&engine, &workload));
        let e2e = measure("e2e", &|| end_to_end(&workload));
        println!(
            "{:<14} {:>14.0} {:>14.0} {:>14.0} {:>11.2}x",
            workload.name,
            native,
            wasm,
            e2e,
            native / wasm
        );
    }
}
