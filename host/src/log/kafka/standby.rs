//! Standby copies of state (`fnctl serve --standby-replicas N`, as Kafka Streams'
//! `num.standby.replicas`): a replica keeps its local copy of partitions other replicas
//! run up to date by following their changelogs, so that when a failover gives it one of
//! them, the restore reads only what the copy lacks. A partition's standbys are the N
//! live replicas after its owner in the order of their ids. Kafka's assignor, not
//! Streamfn, picks a partition's next owner: with more replicas than standbys plus one, a
//! failover may land where no copy is, and restore as without standbys.
//!
//! A partition is either run here or copied here, never both: [`Copies`] keeps a source
//! from taking a partition over while a copy is being written, and a copy from being
//! written once the source has it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::changelog::{Changelog, Pending, QuietEnd, changelog_reader, changelog_topic, position};
use super::cluster::KafkaCluster;
use super::membership::Membership;
use crate::log::embedded::EmbeddedLog;
use crate::metrics::{Metrics, NameLabels};

/// How often the partitions to follow are worked out again.
const RECONSIDER_EVERY: Duration = Duration::from_secs(1);

/// Longest changelog records wait before they are written into a copy.
const WRITE_EVERY: Duration = Duration::from_millis(500);

/// What a function partition is to this replica's local store now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Its source runs it here.
    Run,
    /// A standby write to its copy is under way.
    Copy,
}

/// Which function partitions run here, and which copies are being written, so that the
/// two never meet.
#[derive(Debug, Default)]
pub(super) struct Copies {
    uses: Mutex<BTreeMap<(String, u32), Use>>,
    written: Condvar,
}

impl Copies {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, u32), Use>> {
        self.uses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `function`'s `partition` as run here, once no write to its copy is under way.
    pub(super) fn run(&self, function: &str, partition: u32) {
        let key = (function.to_owned(), partition);
        let mut uses = self.lock();
        while uses.get(&key) == Some(&Use::Copy) {
            uses = self.written.wait(uses).unwrap_or_else(|p| p.into_inner());
        }
        uses.insert(key, Use::Run);
    }

    /// Marks `function`'s `partition` as no longer run here.
    pub(super) fn give_up(&self, function: &str, partition: u32) {
        let key = (function.to_owned(), partition);
        let mut uses = self.lock();
        if uses.get(&key) == Some(&Use::Run) {
            uses.remove(&key);
        }
    }

    /// Runs `write` on the copy of `function`'s `partition` unless the partition runs
    /// here; `None` when it does.
    fn copy<T>(&self, function: &str, partition: u32, write: impl FnOnce() -> T) -> Option<T> {
        let key = (function.to_owned(), partition);
        {
            let mut uses = self.lock();
            if uses.contains_key(&key) {
                return None;
            }
            uses.insert(key.clone(), Use::Copy);
        }
        let written = write();
        self.lock().remove(&key);
        self.written.notify_all();
        Some(written)
    }

    /// Whether `function`'s `partition` runs here.
    fn runs(&self, function: &str, partition: u32) -> bool {
        self.lock().get(&(function.to_owned(), partition)) == Some(&Use::Run)
    }
}

/// The replicas that keep standby copies of a partition `owner` runs: the `n` after it
/// among `replicas` (sorted ids), wrapping around, never the owner itself.
fn standbys_of<'a>(replicas: &'a [String], owner: &str, n: usize) -> Vec<&'a str> {
    let Some(at) = replicas.iter().position(|r| r == owner) else {
        return Vec::new();
    };
    (1..replicas.len())
        .map(|step| replicas[(at + step) % replicas.len()].as_str())
        .take(n)
        .collect()
}

/// A partition followed here.
struct Followed {
    pending: Pending,
    /// The changelog offset the copy holds up to once `pending` is written.
    reached: u64,
    /// How many changelog records the copy lacked when last asked.
    behind: u64,
}

/// The partitions of one function's changelog followed here, and their reader.
struct Follower {
    reader: BaseConsumer<QuietEnd>,
    partitions: BTreeMap<u32, Followed>,
}

/// The standby copies of this replica: a thread following changelogs.
pub(super) struct Standby {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Per function and partition followed, how many changelog records the copy lacks.
    behind: Arc<Mutex<BTreeMap<(String, u32), u64>>>,
}

/// What the following thread works with.
struct Following {
    cluster: Arc<KafkaCluster>,
    local: Arc<EmbeddedLog>,
    membership: Arc<Membership>,
    copies: Arc<Copies>,
    metrics: Arc<Metrics>,
    replica: String,
    replicas: usize,
    followers: BTreeMap<String, Follower>,
    behind: Arc<Mutex<BTreeMap<(String, u32), u64>>>,
}

impl Standby {
    /// Starts keeping copies of the partitions this replica `replica` stands by for,
    /// `replicas` standbys for each partition.
    pub(super) fn start(
        cluster: Arc<KafkaCluster>,
        local: Arc<EmbeddedLog>,
        membership: Arc<Membership>,
        copies: Arc<Copies>,
        metrics: Arc<Metrics>,
        replica: &str,
        replicas: usize,
    ) -> Result<Standby> {
        let stop = Arc::new(AtomicBool::new(false));
        let behind = Arc::new(Mutex::new(BTreeMap::new()));
        let mut following = Following {
            cluster,
            local,
            membership,
            copies,
            metrics,
            replica: replica.to_owned(),
            replicas,
            followers: BTreeMap::new(),
            behind: behind.clone(),
        };
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("standby".into())
                .spawn(move || following.run(&stop))
                .context("starting the standby thread")?
        };
        Ok(Standby {
            stop,
            thread: Mutex::new(Some(thread)),
            behind,
        })
    }

    /// The partitions of `function` copied here, each with how many changelog records
    /// its copy lacks.
    pub(super) fn of(&self, function: &str) -> Vec<(u32, u64)> {
        self.behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((f, _), _)| f == function)
            .map(|((_, partition), behind)| (*partition, *behind))
            .collect()
    }

    /// Stops following, writing what was read.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Following {
    fn run(&mut self, stop: &AtomicBool) {
        let mut reconsidered: Option<Instant> = None;
        let mut written = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if reconsidered.is_none_or(|at| at.elapsed() >= RECONSIDER_EVERY) {
                reconsidered = Some(Instant::now());
                if let Err(err) = self.reconsider() {
                    tracing::warn!("standby copies: {err:#}");
                }
            }
            if self.followers.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            self.read();
            let due = written.elapsed() >= WRITE_EVERY;
            if let Err(err) = self.write(due) {
                tracing::warn!("standby copies: {err:#}");
            }
            if due {
                written = Instant::now();
            }
        }
        if let Err(err) = self.write(true) {
            tracing::warn!("standby copies: {err:#}");
        }
    }

    /// The function partitions this replica stands by for now.
    fn wanted(&self) -> BTreeSet<(String, u32)> {
        let live = self.membership.live();
        let mut replicas: Vec<String> = live.iter().map(|a| a.replica.clone()).collect();
        replicas.sort();
        let mut wanted = BTreeSet::new();
        for announcement in live.iter().filter(|a| a.replica != self.replica) {
            let standbys = standbys_of(&replicas, &announcement.replica, self.replicas);
            if !standbys.contains(&self.replica.as_str()) {
                continue;
            }
            for (function, partitions) in &announcement.assignments {
                for partition in partitions {
                    if !self.copies.runs(function, *partition) {
                        wanted.insert((function.clone(), *partition));
                    }
                }
            }
        }
        wanted
    }

    /// Starts following the partitions to stand by for, stops following the others,
    /// and notes how far behind each copy is.
    fn reconsider(&mut self) -> Result<()> {
        let wanted = self.wanted();
        let mut changed = BTreeSet::new();
        // Partitions no longer wanted: what was read is written, and they are dropped.
        for (function, follower) in &mut self.followers {
            let gone: Vec<u32> = follower
                .partitions
                .keys()
                .filter(|p| !wanted.contains(&(function.clone(), **p)))
                .copied()
                .collect();
            for partition in gone {
                if let Some(mut followed) = follower.partitions.remove(&partition) {
                    let changelog = Changelog {
                        cluster: &self.cluster,
                        local: &self.local,
                        function,
                    };
                    let _ = self.copies.copy(function, partition, || {
                        changelog.store(partition, &mut followed.pending, followed.reached)
                    });
                }
                changed.insert(function.clone());
                tracing::info!(function = %function, partition, "standby copy no longer followed");
            }
        }
        // Partitions newly wanted: followed from their copy's checkpoint.
        for (function, partition) in &wanted {
            if self
                .followers
                .get(function)
                .is_some_and(|f| f.partitions.contains_key(partition))
            {
                continue;
            }
            // One partition that cannot be followed now is tried again at the next
            // look; the others, and the reader's assignment, go on.
            match self.follow(function, *partition) {
                Ok(true) => {
                    changed.insert(function.clone());
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(function = %function, partition, "standby copy not followed yet: {err:#}");
                }
            }
        }
        for function in changed {
            let Some(follower) = self.followers.get(&function) else {
                continue;
            };
            let topic = changelog_topic(&function);
            let mut list = TopicPartitionList::new();
            for (partition, followed) in &follower.partitions {
                list.add_partition_offset(
                    &topic,
                    *partition as i32,
                    Offset::Offset(followed.reached as i64),
                )?;
            }
            follower.reader.assign(&list)?;
        }
        self.followers.retain(|_, f| !f.partitions.is_empty());
        // How far behind each copy is.
        let mut behind = BTreeMap::new();
        for (function, follower) in &mut self.followers {
            let topic = changelog_topic(function);
            for (partition, followed) in &mut follower.partitions {
                if let Ok((_, high)) = self.cluster.watermarks(&topic, *partition) {
                    followed.behind = high.saturating_sub(followed.reached);
                }
                behind.insert((function.clone(), *partition), followed.behind);
            }
        }
        *self.behind.lock().unwrap_or_else(|p| p.into_inner()) = behind;
        Ok(())
    }

    /// Starts following `function`'s `partition` from its copy's checkpoint; false when
    /// the partition runs here.
    fn follow(&mut self, function: &str, partition: u32) -> Result<bool> {
        let changelog = Changelog {
            cluster: &self.cluster,
            local: &self.local,
            function,
        };
        let (low, high) = self
            .cluster
            .watermarks(&changelog_topic(function), partition)?;
        let Some(from) = self.copies.copy(function, partition, || {
            changelog.start(partition, low, high)
        }) else {
            return Ok(false);
        };
        let from = from?;
        let follower = match self.followers.entry(function.to_owned()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => entry.insert(Follower {
                reader: changelog_reader(&self.cluster, function)?,
                partitions: BTreeMap::new(),
            }),
        };
        follower.partitions.insert(
            partition,
            Followed {
                pending: Pending::default(),
                reached: from,
                behind: high.saturating_sub(from),
            },
        );
        tracing::info!(function = %function, partition, from, behind = high.saturating_sub(from), "following a standby copy");
        Ok(true)
    }

    /// Reads what the followed changelogs have, for a moment each.
    fn read(&mut self) {
        for (function, follower) in &mut self.followers {
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(100) {
                match follower.reader.poll(Duration::from_millis(50)) {
                    None => break,
                    // At the end of what is committed, past the transaction markers.
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                        let partition = partition as u32;
                        if let (Some(followed), Some(at)) = (
                            follower.partitions.get_mut(&partition),
                            position(&follower.reader, &changelog_topic(function), partition),
                        ) {
                            followed.reached = followed.reached.max(at);
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(function = %function, "reading a changelog for a standby copy: {err}");
                        break;
                    }
                    Some(Ok(message)) => {
                        let partition = message.partition() as u32;
                        if let Some(followed) = follower.partitions.get_mut(&partition) {
                            followed.pending.add(message.key(), message.payload());
                            followed.reached = message.offset() as u64 + 1;
                        }
                    }
                }
            }
        }
    }

    /// Writes into the copies what was read for them: all of it when `all`, else what
    /// fills a chunk. A partition that runs here now is followed no more.
    fn write(&mut self, all: bool) -> Result<()> {
        for (function, follower) in &mut self.followers {
            let changelog = Changelog {
                cluster: &self.cluster,
                local: &self.local,
                function,
            };
            let mut taken = Vec::new();
            for (partition, followed) in &mut follower.partitions {
                if followed.pending.records == 0 || !(all || followed.pending.full()) {
                    continue;
                }
                let records = followed.pending.records;
                match self.copies.copy(function, *partition, || {
                    changelog.store(*partition, &mut followed.pending, followed.reached)
                }) {
                    Some(stored) => {
                        stored?;
                        followed.pending = Pending::default();
                        self.metrics
                            .standby_records
                            .get_or_create(&NameLabels {
                                function: function.clone(),
                            })
                            .inc_by(records);
                    }
                    None => taken.push(*partition),
                }
            }
            for partition in taken {
                follower.partitions.remove(&partition);
                tracing::info!(function = %function, partition, "standby copy taken over: it runs here now");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_standbys_of_a_partition_are_the_replicas_after_its_owner() {
        let replicas = ids(&["a", "b", "c"]);
        assert_eq!(standbys_of(&replicas, "a", 1), ["b"]);
        assert_eq!(standbys_of(&replicas, "c", 1), ["a"]);
        assert_eq!(standbys_of(&replicas, "b", 2), ["c", "a"]);
        assert_eq!(
            standbys_of(&replicas, "b", 5),
            ["c", "a"],
            "never the owner"
        );
        assert!(standbys_of(&replicas, "gone", 1).is_empty());
        assert!(standbys_of(&ids(&["a"]), "a", 1).is_empty());
    }

    #[test]
    fn a_partition_is_run_or_copied_never_both() {
        let copies = Copies::default();
        assert_eq!(copies.copy("f", 0, || 7), Some(7));
        copies.run("f", 0);
        assert!(copies.runs("f", 0));
        assert_eq!(copies.copy("f", 0, || 7), None, "it runs here");
        copies.give_up("f", 0);
        assert_eq!(copies.copy("f", 0, || 8), Some(8));
    }

    #[test]
    fn taking_a_partition_over_waits_for_the_copy_being_written() {
        let copies = Arc::new(Copies::default());
        let (started, start) = std::sync::mpsc::channel();
        let writer = {
            let copies = copies.clone();
            std::thread::spawn(move || {
                copies.copy("f", 1, || {
                    started.send(()).expect("the test waits");
                    std::thread::sleep(Duration::from_millis(200));
                    Instant::now()
                })
            })
        };
        start.recv().expect("the write started");
        copies.run("f", 1);
        let taken = Instant::now();
        let written = writer.join().expect("the writer").expect("it was copied");
        assert!(written <= taken, "the run began after the write ended");
    }
}
