//! What a replica reports of its functions: `fnctl status` (version, lag, rate, records
//! in and out, dead letters, fuel, state entries, failures, partition owners, the
//! figures of each running version side by side, a replay's progress) and the
//! gauges of `/metrics` that are read off the log rather than counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::Replica;
use crate::log::{PartitionStatus, Restore};
use crate::metrics::{Metrics, NameLabels, PartitionLabels, VersionFigures};
use crate::model::deployment::{Deployment, Replay};
use crate::model::failure::FailureKind;

/// A function as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionStatus {
    /// The running version.
    pub deployment: Deployment,
    /// The topics it reads now: its named inputs and those its pattern matches.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Per input partition.
    pub partitions: Vec<PartitionStatus>,
    /// Total lag.
    pub lag: u64,
    /// Records handed to the function since this replica started.
    pub records_in: u64,
    /// Records it wrote to outputs.
    pub records_out: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Records handled per second over the last minute, on this replica.
    pub rate: f64,
    /// Average fuel burnt per record.
    pub fuel_per_event: f64,
    /// Failures by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// State entries held.
    pub state_entries: u64,
    /// Bytes of state (keys and values) held.
    pub state_bytes: u64,
    /// The host failure that stops the function on this replica now, if one does.
    #[serde(default)]
    pub failing: Option<String>,
    /// The versions that run now (two while a canary runs) and what each did here.
    #[serde(default)]
    pub running: Vec<RunningVersion>,
    /// Restores of its partitions' state under way on this replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restoring: Vec<Restore>,
    /// Partitions other replicas run whose state this replica keeps a standby copy of,
    /// with how many changelog records each copy lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby: Vec<(u32, u64)>,
    /// How far the replay the running version was made for has come, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayProgress>,
}

/// A version that runs now, and what it did on this replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningVersion {
    /// What it did.
    pub figures: VersionFigures,
    /// The input partitions it runs.
    pub partitions: Vec<u32>,
    /// Whether it is a canary.
    pub canary: bool,
}

/// How far a replay has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayProgress {
    /// What was asked for.
    pub replay: Replay,
    /// When (milliseconds since the Unix epoch).
    pub asked_at_ms: i64,
    /// Input partitions that have not moved back yet.
    pub waiting: u32,
    /// Records before where the inputs ended when the replay was asked for that are not
    /// read again yet, on the partitions that moved back.
    pub left: u64,
}

impl ReplayProgress {
    /// Whether every partition moved back and read again up to where it ended.
    pub fn done(&self) -> bool {
        self.waiting == 0 && self.left == 0
    }
}

/// One version of a function, as `fnctl versions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version.
    pub deployment: Deployment,
    /// Whether it is the one that runs.
    pub running: bool,
    /// The replicas that run it.
    pub replicas: Vec<String>,
}

impl Replica {
    /// Every version `name` has had, oldest first, and which runs where.
    pub fn versions_of(&self, name: &str) -> Result<Vec<VersionInfo>> {
        let history = self
            .registry
            .history(name)
            .with_context(|| format!("no function named {name:?} was deployed"))?;
        // The running version, and while it is a canary, the version it runs beside.
        let running: Vec<u32> = history
            .current()
            .map(|d| [Some(d.version), d.canary.as_ref().map(|c| c.base)])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        let replicas = self.log.replicas();
        Ok(history
            .versions
            .into_iter()
            .map(|deployment| {
                let runs = running.contains(&deployment.version);
                VersionInfo {
                    running: runs,
                    replicas: if runs { replicas.clone() } else { Vec::new() },
                    deployment,
                }
            })
            .collect())
    }

    /// Every version `name` has had.
    fn versions(&self, name: &str) -> Vec<u32> {
        self.registry
            .history(name)
            .map(|h| h.versions.iter().map(|d| d.version).collect())
            .unwrap_or_default()
    }

    /// The status of `name`.
    pub fn status(&self, name: &str) -> Result<FunctionStatus> {
        let deployment = self
            .registry
            .current(name)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        let versions = self.versions(name);
        let inputs = self.log.inputs_of(&deployment.spec)?;
        let partitions = self.log.partition_status(&deployment)?;
        let owned: BTreeSet<u32> = partitions
            .iter()
            .filter(|p| p.owner == self.id)
            .map(|p| p.partition)
            .collect();
        let (mut state_entries, mut state_bytes) = (0, 0);
        for partition in owned {
            state_entries += self.log.state_entries(name, partition)?;
            state_bytes += self.log.state_bytes(name, partition)?;
        }
        let replay = self.replay_progress(&deployment, &partitions)?;
        let running = self.running(&deployment, &partitions);
        let records_in = Metrics::total(&self.metrics.records_in, name, versions.clone());
        let fuel = Metrics::total(&self.metrics.fuel, name, versions.clone());
        Ok(FunctionStatus {
            lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            rate: self.rates.rate(name),
            fuel_per_event: if records_in == 0 {
                0.0
            } else {
                fuel as f64 / records_in as f64
            },
            records_in,
            records_out: Metrics::total(&self.metrics.records_out, name, versions.clone()),
            dead_letters: Metrics::total(&self.metrics.dead_letters, name, versions.clone()),
            failures: self
                .metrics
                .failures_of(name, versions)
                .into_iter()
                .collect(),
            state_entries,
            state_bytes,
            failing: self.health(name).0,
            replay,
            running,
            restoring: self.log.restores(name),
            standby: self.log.standbys(name),
            inputs,
            deployment,
        })
    }

    /// The versions that run `deployment`'s `partitions`: it alone, or while it is a
    /// canary, it on its partitions and its base on the others.
    fn running(
        &self,
        deployment: &Deployment,
        partitions: &[PartitionStatus],
    ) -> Vec<RunningVersion> {
        let name = &deployment.spec.name;
        let all: BTreeSet<u32> = partitions.iter().map(|p| p.partition).collect();
        let Some(canary) = &deployment.canary else {
            return vec![RunningVersion {
                figures: self.metrics.figures(name, deployment.version),
                partitions: all.into_iter().collect(),
                canary: false,
            }];
        };
        let (ours, theirs): (Vec<u32>, Vec<u32>) = all.into_iter().partition(|p| canary.runs(*p));
        vec![
            RunningVersion {
                figures: self.metrics.figures(name, canary.base),
                partitions: theirs,
                canary: false,
            },
            RunningVersion {
                figures: self.metrics.figures(name, deployment.version),
                partitions: ours,
                canary: true,
            },
        ]
    }

    /// How far the replay `deployment` was made for has come on `partitions`: a partition
    /// run here that has not carried it out yet is waiting, and so is one no replica runs
    /// now (as while a new version takes over); one that has (or that another replica
    /// runs) has what lies between its committed offset and where it ended left.
    fn replay_progress(
        &self,
        deployment: &Deployment,
        partitions: &[PartitionStatus],
    ) -> Result<Option<ReplayProgress>> {
        let Some(replay) = &deployment.replay else {
            return Ok(None);
        };
        let name = &deployment.spec.name;
        let (mut waiting, mut left) = (0, 0);
        for p in partitions {
            let moved = if p.owner == self.id {
                self.log.replayed(name, p.partition)? >= Some(deployment.version)
            } else {
                p.owner != crate::log::NO_OWNER
            };
            if !moved {
                waiting += 1;
                continue;
            }
            let until = replay
                .until
                .iter()
                .find(|(topic, partition, _)| *topic == p.topic && *partition == p.partition)
                .map_or(0, |(_, _, end)| *end);
            left += until.saturating_sub(p.committed);
        }
        Ok(Some(ReplayProgress {
            replay: replay.clone(),
            asked_at_ms: deployment.deployed_at_ms,
            waiting,
            left,
        }))
    }

    /// Sets the gauges that are read off the log rather than counted: lag, committed
    /// offsets, assigned partitions and state entries of what this replica runs.
    pub fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics.consumer_lag.clear();
        metrics.committed_offset.clear();
        metrics.assigned_partitions.clear();
        metrics.state_entries.clear();
        metrics.state_bytes.clear();
        metrics.failing.clear();
        let active = self.registry.active();
        metrics.functions.set(active.len() as i64);
        match self.log.storage() {
            Ok(usage) => {
                metrics.store_bytes.set(usage.store_bytes as i64);
                metrics.disk_free_bytes.set(usage.free_bytes as i64);
                let counted = metrics.store_io_errors.get();
                metrics
                    .store_io_errors
                    .inc_by(usage.io_errors.saturating_sub(counted));
            }
            Err(err) => tracing::debug!("no storage figures for metrics: {err:#}"),
        }
        for deployment in active {
            let name = &deployment.spec.name;
            let status = match self.status(name) {
                Ok(status) => status,
                Err(err) => {
                    tracing::debug!(function = %name, "no status for metrics: {err:#}");
                    continue;
                }
            };
            let mut owned = BTreeSet::new();
            for p in status.partitions.iter().filter(|p| p.owner == self.id) {
                let labels = PartitionLabels {
                    function: name.clone(),
                    topic: p.topic.clone(),
                    partition: p.partition.to_string(),
                };
                metrics
                    .consumer_lag
                    .get_or_create(&labels)
                    .set(p.lag as i64);
                metrics
                    .committed_offset
                    .get_or_create(&labels)
                    .set(p.committed as i64);
                owned.insert(p.partition);
            }
            let labels = NameLabels {
                function: name.clone(),
            };
            metrics
                .assigned_partitions
                .get_or_create(&labels)
                .set(owned.len() as i64);
            metrics
                .state_entries
                .get_or_create(&labels)
                .set(status.state_entries as i64);
            metrics
                .state_bytes
                .get_or_create(&labels)
                .set(status.state_bytes as i64);
            let (_, abandoned) = self.health(name);
            metrics
                .failing
                .get_or_create(&labels)
                .set(i64::from(status.failing.is_some()));
            let counter = metrics.abandoned.get_or_create(&labels);
            counter.inc_by(abandoned.saturating_sub(counter.get()));
        }
    }

    /// Samples what every function has handled, for its rate.
    pub(super) fn sample_rates(&self) {
        for deployment in self.registry.active() {
            let name = &deployment.spec.name;
            let versions = self.versions(name);
            self.rates.sample(
                name,
                Metrics::total(&self.metrics.records_in, name, versions),
            );
        }
    }
}

/// Samples of each function's records-in counter, for its rate over the last minute.
#[derive(Default)]
pub(super) struct Rates(Mutex<BTreeMap<String, VecDeque<(Instant, u64)>>>);

/// How far back a rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Rates {
    fn sample(&self, function: &str, total: u64) {
        let now = Instant::now();
        let mut samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = samples.entry(function.to_owned()).or_default();
        kept.push_back((now, total));
        while kept
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            kept.pop_front();
        }
    }

    /// Records per second between the oldest and newest sample.
    fn rate(&self, function: &str) -> f64 {
        let samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(kept) = samples.get(function) else {
            return 0.0;
        };
        match (kept.front(), kept.back()) {
            (Some((t0, v0)), Some((t1, v1))) if t1 > t0 => {
                v1.saturating_sub(*v0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}
