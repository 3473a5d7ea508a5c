//! The replica's metrics, in Prometheus text format on `/metrics`: per function and
//! version, what went in, what came out, what failed and what it cost; per function and
//! partition, lag and committed offsets; per replica, what it runs and restores, its
//! build, its store and disk, and the process (`process.rs`).

mod process;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::dispatch::BatchStats;
use crate::model::failure::FailureKind;

/// Labels of per-function metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// Function name.
    pub function: String,
    /// Deployment version.
    pub version: String,
}

/// Labels of failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Function name.
    pub function: String,
    /// Deployment version.
    pub version: String,
    /// Failure kind.
    pub kind: String,
}

/// Labels of metrics of a function as a whole on this replica.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    /// Function name.
    pub function: String,
}

/// Labels of the build's metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The version of Streamfn.
    pub version: String,
}

/// Labels of per-partition metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Function name.
    pub function: String,
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: String,
}

/// What one version of a function did on a replica.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionFigures {
    /// The version.
    pub version: u32,
    /// Records handed to it.
    pub records_in: u64,
    /// Records it wrote to outputs.
    pub records_out: u64,
    /// Events and timers that failed.
    pub failed: u64,
    /// Fuel it burnt.
    pub fuel: u64,
    /// Runs of batches it committed.
    pub batches: u64,
    /// Seconds from fetch to commit of those runs, added up.
    pub batch_seconds: f64,
}

impl VersionFigures {
    /// Failed events per record.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failed as f64, self.records_in)
    }

    /// Fuel per record.
    pub fn fuel_per_event(&self) -> f64 {
        ratio(self.fuel as f64, self.records_in)
    }

    /// Mean seconds from fetch to commit of a run of batches.
    pub fn mean_batch_seconds(&self) -> f64 {
        ratio(self.batch_seconds, self.batches)
    }
}

/// `part / whole`, 0 when there is no whole.
fn ratio(part: f64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part / whole as f64 }
}

type HistogramFamily = Family<FunctionLabels, Histogram, fn() -> Histogram>;

/// Every metric of a replica.
pub struct Metrics {
    registry: Registry,
    /// Calls into guests.
    pub invocations: Family<FunctionLabels, Counter>,
    /// Input records handed to functions (each counted once, however often it ran).
    pub records_in: Family<FunctionLabels, Counter>,
    /// Records committed to output topics (dead letters not included).
    pub records_out: Family<FunctionLabels, Counter>,
    /// Failed events and timers, by kind.
    pub failures: Family<FailureLabels, Counter>,
    /// Records written to dead-letter topics.
    pub dead_letters: Family<FunctionLabels, Counter>,
    /// Fuel burnt per event, per batch.
    pub fuel_per_event: HistogramFamily,
    /// Fuel burnt in all.
    pub fuel: Family<FunctionLabels, Counter>,
    /// Seconds from fetch to commit, per run of batches.
    pub batch_seconds: HistogramFamily,
    /// Runs of batches and their seconds added up, per version, for status (the
    /// histogram's own sum and count are for Prometheus only).
    batch_totals: std::sync::Mutex<std::collections::HashMap<FunctionLabels, (u64, f64)>>,
    /// Live function instances.
    pub instances: Family<FunctionLabels, Gauge>,
    /// Partitions this replica runs.
    pub assigned_partitions: Family<NameLabels, Gauge>,
    /// State entries of the partitions this replica runs.
    pub state_entries: Family<NameLabels, Gauge>,
    /// Bytes of state of the partitions this replica runs.
    pub state_bytes: Family<NameLabels, Gauge>,
    /// 1 while a host failure stops the function on this replica.
    pub failing: Family<NameLabels, Gauge>,
    /// Batches abandoned to host failures, to be run again.
    pub abandoned: Family<NameLabels, Counter>,
    /// Partition state restores from a changelog.
    pub restores: Family<NameLabels, Counter>,
    /// Changelog records read by restores.
    pub restored_records: Family<NameLabels, Counter>,
    /// Bytes of changelog keys and values read by restores.
    pub restored_bytes: Family<NameLabels, Counter>,
    /// Changelog records read into standby copies of partitions other replicas run.
    pub standby_records: Family<NameLabels, Counter>,
    /// Records not yet handled, per input partition this replica runs.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Next offset to handle, per input partition this replica runs.
    pub committed_offset: Family<PartitionLabels, Gauge>,
    /// Functions deployed.
    pub functions: Gauge,
    /// Bytes of the replica's store file.
    pub store_bytes: Gauge,
    /// Bytes free on the store's disk.
    pub disk_free_bytes: Gauge,
    /// Failed reads and writes of the store.
    pub store_io_errors: Counter,
}

fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1000.0, 4.0, 12))
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Metrics> {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("streamfn");
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The build of Streamfn running", build);
        let functions = Gauge::default();
        let store_bytes = Gauge::default();
        let disk_free_bytes = Gauge::default();
        let store_io_errors = Counter::default();
        registry.register("functions", "Functions deployed", functions.clone());
        registry.register_with_unit(
            "store",
            "Size of the replica's store file",
            prometheus_client::registry::Unit::Bytes,
            store_bytes.clone(),
        );
        registry.register_with_unit(
            "disk_free",
            "Free space of the disk the store is on",
            prometheus_client::registry::Unit::Bytes,
            disk_free_bytes.clone(),
        );
        registry.register(
            "store_io_errors",
            "Failed reads and writes of the replica's store",
            store_io_errors.clone(),
        );
        let invocations = Family::default();
        let records_in = Family::default();
        let records_out = Family::default();
        let failures = Family::default();
        let dead_letters = Family::default();
        let fuel_per_event: HistogramFamily = Family::new_with_constructor(fuel_histogram);
        let fuel = Family::default();
        let batch_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let instances = Family::default();
        let assigned_partitions = Family::default();
        let state_entries = Family::default();
        let state_bytes: Family<NameLabels, Gauge> = Family::default();
        let failing: Family<NameLabels, Gauge> = Family::default();
        let abandoned: Family<NameLabels, Counter> = Family::default();
        registry.register(
            "function_failing",
            "1 while a host failure stops the function on this replica",
            failing.clone(),
        );
        registry.register(
            "abandoned_batches",
            "Batches abandoned to host failures, to be run again",
            abandoned.clone(),
        );
        let restores = Family::default();
        let restored_records = Family::default();
        let restored_bytes = Family::default();
        let standby_records = Family::default();
        let consumer_lag = Family::default();
        let committed_offset = Family::default();
        registry.register(
            "invocations",
            "Calls into function instances",
            invocations.clone(),
        );
        registry.register(
            "records_in",
            "Input records handed to functions",
            records_in.clone(),
        );
        registry.register(
            "records_out",
            "Records functions wrote to output topics",
            records_out.clone(),
        );
        registry.register(
            "failures",
            "Failed events and timers by failure kind",
            failures.clone(),
        );
        registry.register(
            "dead_letters",
            "Records written to dead-letter topics",
            dead_letters.clone(),
        );
        registry.register(
            "fuel_per_event",
            "Fuel burnt per event, per batch",
            fuel_per_event.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel burnt by function instances",
            fuel.clone(),
        );
        registry.register_with_unit(
            "batch_duration",
            "Time from fetching a run of batches to committing it",
            prometheus_client::registry::Unit::Seconds,
            batch_seconds.clone(),
        );
        registry.register("instances", "Live function instances", instances.clone());
        registry.register(
            "assigned_partitions",
            "Partitions this replica runs",
            assigned_partitions.clone(),
        );
        registry.register(
            "state_entries",
            "State entries of the partitions this replica runs",
            state_entries.clone(),
        );
        registry.register_with_unit(
            "state",
            "Bytes of state (keys and values) of the partitions this replica runs",
            prometheus_client::registry::Unit::Bytes,
            state_bytes.clone(),
        );
        registry.register(
            "state_restores",
            "Partition state restores from a changelog",
            restores.clone(),
        );
        registry.register(
            "state_restored_records",
            "Changelog records read by restores",
            restored_records.clone(),
        );
        registry.register_with_unit(
            "state_restored",
            "Changelog keys and values read by restores",
            prometheus_client::registry::Unit::Bytes,
            restored_bytes.clone(),
        );
        registry.register(
            "state_standby_records",
            "Changelog records read into standby copies of partitions other replicas run",
            standby_records.clone(),
        );
        registry.register(
            "consumer_lag_records",
            "Records not yet handled, per input partition",
            consumer_lag.clone(),
        );
        registry.register(
            "committed_offset",
            "Next offset to handle, per input partition",
            committed_offset.clone(),
        );
        Arc::new(Metrics {
            registry: root,
            invocations,
            records_in,
            records_out,
            failures,
            dead_letters,
            fuel_per_event,
            fuel,
            batch_seconds,
            batch_totals: Default::default(),
            instances,
            assigned_partitions,
            state_entries,
            state_bytes,
            failing,
            abandoned,
            restores,
            restored_records,
            restored_bytes,
            standby_records,
            consumer_lag,
            committed_offset,
            functions,
            store_bytes,
            disk_free_bytes,
            store_io_errors,
        })
    }

    /// Makes every counter of `function` version `version` exist at zero, so that alerts
    /// on their rates have a series to watch from the deploy on.
    pub fn declare(&self, function: &str, version: u32) {
        let labels = FunctionLabels {
            function: function.to_owned(),
            version: version.to_string(),
        };
        for family in [
            &self.invocations,
            &self.records_in,
            &self.records_out,
            &self.dead_letters,
            &self.fuel,
        ] {
            let _ = family.get_or_create(&labels);
        }
        for kind in FailureKind::ALL {
            let _ = self.failures.get_or_create(&FailureLabels {
                function: function.to_owned(),
                version: version.to_string(),
                kind: kind.as_str().to_owned(),
            });
        }
    }

    /// Counts a committed batch of `function` version `version`.
    pub fn record_batch(
        &self,
        function: &str,
        version: u32,
        events: usize,
        outputs: usize,
        stats: &BatchStats,
        seconds: f64,
    ) {
        let labels = FunctionLabels {
            function: function.to_owned(),
            version: version.to_string(),
        };
        self.invocations.get_or_create(&labels).inc_by(stats.calls);
        self.records_in.get_or_create(&labels).inc_by(events as u64);
        self.records_out
            .get_or_create(&labels)
            .inc_by(outputs as u64);
        let mut dead = 0;
        for (kind, n) in &stats.failures {
            self.failures
                .get_or_create(&FailureLabels {
                    function: function.to_owned(),
                    version: version.to_string(),
                    kind: kind.as_str().to_owned(),
                })
                .inc_by(*n);
            dead += n;
        }
        self.dead_letters.get_or_create(&labels).inc_by(dead);
        self.fuel.get_or_create(&labels).inc_by(stats.fuel);
        if events > 0 {
            self.fuel_per_event
                .get_or_create(&labels)
                .observe(stats.fuel as f64 / events as f64);
        }
        self.batch_seconds.get_or_create(&labels).observe(seconds);
        let mut totals = self.batch_totals.lock().unwrap_or_else(|p| p.into_inner());
        let (batches, total) = totals.entry(labels).or_default();
        *batches += 1;
        *total += seconds;
    }

    /// What `version` of `function` did on this replica.
    pub fn figures(&self, function: &str, version: u32) -> VersionFigures {
        let labels = FunctionLabels {
            function: function.to_owned(),
            version: version.to_string(),
        };
        let count =
            |family: &Family<FunctionLabels, Counter>| family.get(&labels).map_or(0, |c| c.get());
        let (batches, batch_seconds) = self
            .batch_totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&labels)
            .copied()
            .unwrap_or_default();
        VersionFigures {
            version,
            records_in: count(&self.records_in),
            records_out: count(&self.records_out),
            failed: self
                .failures_of(function, [version])
                .iter()
                .map(|(_, n)| n)
                .sum(),
            fuel: count(&self.fuel),
            batches,
            batch_seconds,
        }
    }

    /// Failures of `function` (all versions) by kind.
    pub fn failures_of(
        &self,
        function: &str,
        versions: impl IntoIterator<Item = u32> + Clone,
    ) -> Vec<(FailureKind, u64)> {
        FailureKind::ALL
            .iter()
            .map(|kind| {
                let n = versions
                    .clone()
                    .into_iter()
                    .map(|version| {
                        self.failures
                            .get(&FailureLabels {
                                function: function.to_owned(),
                                version: version.to_string(),
                                kind: kind.as_str().to_owned(),
                            })
                            .map_or(0, |c| c.get())
                    })
                    .sum();
                (*kind, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Sum of a per-function counter over `versions`.
    pub fn total(
        family: &Family<FunctionLabels, Counter>,
        function: &str,
        versions: impl IntoIterator<Item = u32>,
    ) -> u64 {
        versions
            .into_iter()
            .map(|version| {
                family
                    .get(&FunctionLabels {
                        function: function.to_owned(),
                        version: version.to_string(),
                    })
                    .map_or(0, |c| c.get())
            })
            .sum()
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
