//! What the benches share: records from the demo's JSON, a dispatcher with default limits,
//! committed state in memory, and the median and range of repeated runs.

// Every bench includes this module; each uses part of it.
#![allow(dead_code)]

pub mod cpu;

/// The allocator `fnctl` runs a replica with, so that the benches measure what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::{Arc, RwLock};

use std::collections::BTreeMap;

use serde_json::Value;
use streamfn_host::dispatch::Dispatcher;
use streamfn_host::sandbox::{Engine, InstanceConfig, LoadedComponent};

use streamfn_host::model::limits::Limits;
use streamfn_host::model::record::Record;
use streamfn_host::state::{CommittedState, MemoryState};

/// The record of one of the demo generator's JSON values, keyed by its field `key`.
pub fn record(value: &Value, key: &str) -> Record {
    Record {
        timestamp_ms: value["timestamp_ms"].as_i64().unwrap_or(0),
        key: value[key].as_str().map(|k| k.as_bytes().to_vec()),
        value: Some(value.to_string().into_bytes()),
        headers: Vec::new(),
    }
}

/// A dispatcher of `component` with the default limits, allowed to emit to `outputs`.
pub fn dispatcher(
    engine: &Arc<Engine>,
    component: LoadedComponent,
    outputs: &[&str],
) -> Dispatcher {
    let config = InstanceConfig {
        function: Arc::from("bench"),
        version: 1,
        config: Arc::new(BTreeMap::new()),
        outputs: Arc::new(outputs.iter().map(|s| (*s).to_owned()).collect()),
        encoder: Arc::default(),
        limits: Limits::default(),
        max_record_bytes: 1 << 20,
        log: Arc::new(|_| {}),
    };
    Dispatcher::sandboxed(engine.clone(), component, config, Default::default())
}

/// Committed state in memory, shared between batches the way a store is.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<MemoryState>>);

impl CommittedState for Shared {
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(key)
    }
    fn value_len(&self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .value_len(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .scan(prefix, after, limit)
    }
    fn timer(&self, key: &[u8]) -> anyhow::Result<Option<i64>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).timer(key)
    }
    fn held_bytes(&self) -> anyhow::Result<u64> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .held_bytes()
    }
    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .timers_after(after, limit)
    }
}

impl Shared {
    /// Applies a batch's accepted writes, as a commit would, for the next batch to see.
    pub fn apply(&self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            match v {
                Some(v) => map.state.insert(k, v),
                None => map.state.remove(&k),
            };
        }
    }
}

/// How many runs each measure takes.
pub fn runs() -> usize {
    std::env::var("STREAMFN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Events per second over `runs` runs of `run`: median, lowest, highest.
pub fn measure(run: &dyn Fn() -> f64) -> Rates {
    Rates::of((0..runs()).map(|_| run()).collect())
}

/// Median and range of a measure.
#[derive(Clone, Copy)]
pub struct Rates {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Rates {
    pub fn of(mut rates: Vec<f64>) -> Rates {
        rates.sort_by(f64::total_cmp);
        Rates {
            median: rates[rates.len() / 2],
            low: rates[0],
            high: rates[rates.len() - 1],
        }
    }

    pub const SKIPPED: Rates = Rates {
        median: f64::NAN,
        low: f64::NAN,
        high: f64::NAN,
    };
}

impl std::fmt::Display for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.median.is_nan() {
            return write!(f, "{:>24}", "-");
        }
        let k = |v: f64| v / 1000.0;
        let text = format!(
            "{:.0}k ({:.0}-{:.0}k)",
            k(self.median),
            k(self.low),
            k(self.high)
        );
        write!(f, "{text:>24}")
    }
}
