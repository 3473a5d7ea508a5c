//! Which replica runs which partitions. Every replica announces itself and its
//! assignments on a compacted internal topic every few seconds and reads everyone's
//! announcements, so any replica can tell who owns what. Kafka's consumer groups decide
//! the assignments; this only makes them visible.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::cluster::KafkaCluster;
use crate::model::clock::now_ms;

/// The topic replicas announce themselves on.
pub const REPLICAS_TOPIC: &str = "_streamfn_replicas";

/// How often a replica announces itself.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// An announcement older than this is from a replica that is gone.
pub const GONE_AFTER_MS: i64 = 10_000;

/// Partitions each function runs on this replica, kept up to date by its sources. A
/// change is announced at once rather than at the next tick.
#[derive(Default)]
pub struct Assignments {
    current: Mutex<BTreeMap<String, BTreeSet<u32>>>,
    changed: Condvar,
}

impl Assignments {
    /// Records that `function` now runs `partitions` here.
    pub fn set(&self, function: &str, partitions: BTreeSet<u32>) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.get(function) != Some(&partitions) {
            current.insert(function.to_owned(), partitions);
            self.changed.notify_all();
        }
    }

    /// Forgets `function`.
    pub fn remove(&self, function: &str) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.remove(function).is_some() {
            self.changed.notify_all();
        }
    }

    /// Whether `function` runs `partition` here.
    fn runs(&self, function: &str, partition: u32) -> bool {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(function)
            .is_some_and(|p| p.contains(&partition))
    }

    fn snapshot(&self) -> BTreeMap<String, BTreeSet<u32>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the assignments change, or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.changed.wait_timeout(current, timeout);
    }
}

/// One replica's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    /// The replica's id.
    pub replica: String,
    /// Its admin API address.
    pub admin: String,
    /// Partitions it runs, per function.
    pub assignments: BTreeMap<String, BTreeSet<u32>>,
    /// When it announced, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// This replica's membership: announcing, and knowing the others.
pub struct Membership {
    /// This replica's id.
    id: String,
    /// This replica's assignments.
    pub assignments: Arc<Assignments>,
    seen: Arc<Mutex<BTreeMap<String, Announcement>>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Membership {
    /// Starts announcing replica `id` (admin API at `admin`) and reading the others.
    pub fn start(cluster: &Arc<KafkaCluster>, id: &str, admin: &str) -> Result<Arc<Membership>> {
        cluster.ensure_topic(
            REPLICAS_TOPIC,
            1,
            &[("cleanup.policy", "compact"), ("segment.ms", "600000")],
        )?;
        let membership = Arc::new(Membership {
            id: id.to_owned(),
            assignments: Arc::new(Assignments::default()),
            seen: Arc::new(Mutex::new(BTreeMap::new())),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        });
        let producer: BaseProducer = cluster
            .options
            .config(&[("linger.ms", "0")])
            .create()
            .context("configuring the membership producer")?;
        let consumer: BaseConsumer = cluster
            .options
            .config(&[
                ("enable.auto.commit", "false"),
                ("group.id", "streamfn-membership"),
            ])
            .create()
            .context("configuring the membership reader")?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(REPLICAS_TOPIC, 0, Offset::Beginning)?;
        consumer
            .assign(&list)
            .context("reading the replicas topic")?;

        let (id, admin) = (id.to_owned(), admin.to_owned());
        let announcer = {
            let stop = membership.stop.clone();
            let assignments = membership.assignments.clone();
            std::thread::Builder::new()
                .name("announce".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let announcement = Announcement {
                            replica: id.clone(),
                            admin: admin.clone(),
                            assignments: assignments.snapshot(),
                            at_ms: now_ms(),
                        };
                        if let Ok(value) = serde_json::to_vec(&announcement) {
                            let _ = producer
                                .send(BaseRecord::to(REPLICAS_TOPIC).key(&id).payload(&value));
                        }
                        producer.poll(Duration::ZERO);
                        assignments.wait(ANNOUNCE_EVERY);
                    }
                    // Leaving: a tombstone tells the others at once.
                    let _ = producer.send(BaseRecord::<String, [u8]>::to(REPLICAS_TOPIC).key(&id));
                    let _ = producer.flush(Duration::from_secs(5));
                })
                .context("starting the announcer")?
        };
        let reader = {
            let stop = membership.stop.clone();
            let seen = membership.seen.clone();
            std::thread::Builder::new()
                .name("membership".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                            continue;
                        };
                        let Some(key) = message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                        else {
                            continue;
                        };
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        match message
                            .payload()
                            .and_then(|p| serde_json::from_slice(p).ok())
                        {
                            Some(announcement) => seen.insert(key, announcement),
                            None => seen.remove(&key),
                        };
                    }
                })
                .context("starting the membership reader")?
        };
        membership
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([announcer, reader]);
        Ok(membership)
    }

    /// Replicas heard from recently.
    pub fn live(&self) -> Vec<Announcement> {
        let now = now_ms();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|a| now - a.at_ms < GONE_AFTER_MS)
            .cloned()
            .collect()
    }

    /// The replica that runs `function`'s `partition`: this one if it does, else the
    /// one that last announced it (which may lag a while after the broker was away).
    pub fn owner(&self, function: &str, partition: u32) -> Option<String> {
        if self.assignments.runs(function, partition) {
            return Some(self.id.clone());
        }
        // After a failover two replicas may claim it for a moment; the latest word wins.
        self.live()
            .into_iter()
            .filter(|a| {
                a.assignments
                    .get(function)
                    .is_some_and(|p| p.contains(&partition))
            })
            .max_by_key(|a| a.at_ms)
            .map(|a| a.replica)
    }

    /// Stops announcing (sending a farewell) and reading.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = thread.join();
        }
    }
}
