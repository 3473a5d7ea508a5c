//! A runner's passes over an in-memory source and a scripted guest: commits that fail,
//! sources that cannot go on, and an event that asks for retries until they are spent.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};

use super::activation::{Active, Loaded};
use super::*;
use crate::dispatch::{DeadLetterTopic, Dispatcher, Guest, Guests};
use crate::model::deployment::{DeploySpec, Deployment, History, Replay, ReplayFrom};
use crate::model::effects::{Commit, Output};
use crate::model::event::InputEvent;
use crate::model::limits::Limits;
use crate::model::record::Record;
use crate::registry::RegistryStore;
use crate::sandbox::CallResult;
use crate::sandbox::bindings::{Event, FiredTimer, Outcome};
use crate::state::{CommittedState, MemoryState, PartitionState};

/// One partition of one input topic, and what was committed of it.
#[derive(Default)]
struct Topic {
    records: Vec<InputEvent>,
    committed: u64,
    /// The outputs of every commit that went through, in order.
    outputs: Vec<Output>,
    /// Commits still to fail.
    failing_commits: usize,
    resets: usize,
    broken: bool,
    /// The version whose replay was carried out last.
    replayed: Option<u32>,
    /// The furthest offset a fetch reached.
    read_to: u64,
}

struct MemorySource {
    topic: Arc<Mutex<Topic>>,
    cursor: Option<u64>,
}

impl Source for MemorySource {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        Ok(vec![0])
    }

    fn wait(&mut self, _timeout: Duration) {}

    fn fetch(&mut self, _partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        let mut topic = self.topic.lock().expect("topic");
        let from = self.cursor.unwrap_or(topic.committed) as usize;
        let events: Vec<InputEvent> = topic.records.iter().skip(from).take(max).cloned().collect();
        let to = (from + events.len()) as u64;
        self.cursor = Some(to);
        topic.read_to = topic.read_to.max(to);
        Ok(events)
    }

    fn state(&mut self, _partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        Ok((Box::new(MemoryState::default()), i64::MIN))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        let mut topic = self.topic.lock().expect("topic");
        if topic.failing_commits > 0 {
            topic.failing_commits -= 1;
            bail!("the broker went away");
        }
        for commit in commits {
            if let Some((_, next)) = commit.offsets.iter().find(|(t, _)| t == "in") {
                topic.committed = *next;
            }
            topic.outputs.extend(commit.effects.outputs.iter().cloned());
        }
        Ok(())
    }

    fn rewind(&mut self, _partition: u32) {
        self.cursor = None;
    }

    fn reset(&mut self) -> Result<()> {
        let mut topic = self.topic.lock().expect("topic");
        topic.resets += 1;
        self.cursor = None;
        if topic.broken {
            bail!("fenced");
        }
        Ok(())
    }

    fn replay(&mut self, _partition: u32, version: u32, replay: &Replay) -> Result<()> {
        let mut topic = self.topic.lock().expect("topic");
        if topic.replayed >= Some(version) {
            return Ok(());
        }
        topic.committed = match &replay.from {
            ReplayFrom::Earliest => 0,
            ReplayFrom::Offsets(given) => given.first().map_or(topic.committed, |o| o.2),
            ReplayFrom::Time(_) => bail!("no times in this test"),
        };
        topic.replayed = Some(version);
        self.cursor = None;
        Ok(())
    }
}

/// Counts the sources it opens; the tests hand the runner its source themselves.
#[derive(Default)]
struct Opens(AtomicUsize);

impl Sources for Opens {
    fn source(&self, _deployment: &Deployment) -> Result<Box<dyn Source>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        bail!("not in this test")
    }

    fn max_record_bytes(&self) -> usize {
        1 << 20
    }
}

#[derive(Default)]
struct NoStore;

impl RegistryStore for NoStore {
    fn load(&self) -> Result<Vec<(String, History)>> {
        Ok(Vec::new())
    }
    fn save(&self, _name: &str, _history: &History) -> Result<()> {
        Ok(())
    }
    fn put_artifact(&self, _sha256: &str, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
    fn artifact(&self, _sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// Emits each event's value to `out`, and asks for a retry of the value `retry`.
struct Echo;

impl Guest for Echo {
    fn handle(&mut self, mut state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        for event in events {
            if event.value.as_deref() == Some(&b"retry"[..]) {
                outcomes.push(Outcome::Retry("the inventory service is down".into()));
                continue;
            }
            state.current.outputs.push(Output {
                topic: "out".into(),
                fallback_partition: 0,
                record: Record {
                    value: event.value.clone(),
                    ..Record::default()
                },
            });
            outcomes.push(Outcome::Ok);
        }
        (state, Ok((outcomes, 1)))
    }

    fn on_timers(
        &mut self,
        state: PartitionState,
        _partition: u32,
        _stream_time_ms: i64,
        _fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        (state, Ok((Ok(()), 1)))
    }
}

struct Echoes;

impl Guests for Echoes {
    fn instantiate(&self) -> Result<Box<dyn Guest>> {
        Ok(Box::new(Echo))
    }
}

fn deployment(limits: Limits) -> Deployment {
    Deployment {
        replay: None,
        canary: None,
        cause: None,
        version: 1,
        deployed_at_ms: 0,
        spec: DeploySpec {
            outputs: vec!["out".into()],
            limits,
            ..DeploySpec::new("f", &"0".repeat(64), &["in"])
        },
    }
}

/// A runner of function `f` over `values` on one partition of `in`.
fn runner(values: &[&str], limits: Limits) -> (Runner, Arc<Mutex<Topic>>, Arc<Opens>) {
    let records = values
        .iter()
        .enumerate()
        .map(|(offset, value)| InputEvent {
            topic: "in".into(),
            offset: offset as u64,
            record: Record {
                timestamp_ms: offset as i64,
                value: Some(value.as_bytes().to_vec()),
                ..Record::default()
            },
        })
        .collect();
    let topic = Arc::new(Mutex::new(Topic {
        records,
        ..Topic::default()
    }));
    let opens = Arc::new(Opens::default());
    let context = RunnerContext {
        sources: opens.clone(),
        engine: Engine::new(None).expect("an engine"),
        registry: Registry::open(Arc::new(NoStore)).expect("a registry"),
        metrics: Metrics::new(),
        logs: Arc::new(LogBook::default()),
        workers: Workers::start(2).expect("workers"),
        schema_registry: None,
    };
    let mut runner = Runner::new(context, "f".into(), Arc::new(AtomicBool::new(false)));
    runner.active = Some(Active {
        current: Loaded {
            deployment: deployment(limits.clone()),
            template: Dispatcher::new(Arc::new(Echoes), limits, Default::default()),
            spare: Vec::new(),
            dead_letters: DeadLetterTopic {
                topic: "f-dlq".into(),
                function: "f".into(),
                version: 1,
            },
        },
        base: None,
        source: Box::new(MemorySource {
            topic: topic.clone(),
            cursor: None,
        }),
        replayed: Default::default(),
    });
    (runner, topic, opens)
}

/// A pass, then the commit of what it ran, which the next pass would make.
fn pass(runner: &mut Runner) -> Result<bool> {
    let worked = runner.pass()?;
    runner.settle()?;
    Ok(worked)
}

fn values(outputs: &[Output], topic: &str) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| o.topic == topic)
        .map(|o| String::from_utf8_lossy(o.record.value.as_deref().unwrap_or_default()).into())
        .collect()
}

#[test]
fn a_failed_commit_resets_the_source_and_runs_the_batch_again_without_reopening_it() {
    let (mut runner, topic, opens) = runner(&["a", "b", "c"], Limits::default());
    topic.lock().expect("topic").failing_commits = 1;
    let err = pass(&mut runner).expect_err("the commit fails");
    assert!(format!("{err:#}").contains("broker went away"), "{err:#}");
    runner.recover();
    assert!(runner.active.is_some(), "the function stays loaded");
    assert!(
        pass(&mut runner).expect("the pass runs again"),
        "it had work"
    );
    let topic = topic.lock().expect("topic");
    assert_eq!(topic.resets, 1);
    assert_eq!(topic.committed, 3);
    assert_eq!(
        values(&topic.outputs, "out"),
        vec!["a", "b", "c"],
        "once each"
    );
    assert_eq!(
        opens.0.load(Ordering::SeqCst),
        0,
        "the source was not opened again"
    );
}

#[test]
fn a_replay_moves_back_once_per_partition_after_the_last_pass_commits() {
    let (mut runner, topic, _) = runner(&["a", "b", "c", "d"], Limits::default());
    // The first pass runs and its commit is left under way.
    assert!(runner.pass().expect("a pass"), "it had work");
    let active = runner.active.as_mut().expect("active");
    active.current.deployment.version = 2;
    active.current.deployment.replay = Some(Replay {
        from: ReplayFrom::Offsets(vec![("in".into(), 0, 1)]),
        reset_state: false,
        until: Vec::new(),
    });
    // The replay waits for that commit, then moves the partition back once.
    while pass(&mut runner).expect("a pass") {}
    pass(&mut runner).expect("an idle pass");
    let topic = topic.lock().expect("topic");
    assert_eq!(topic.replayed, Some(2));
    assert_eq!(topic.committed, 4);
    assert_eq!(
        values(&topic.outputs, "out"),
        ["a", "b", "c", "d", "b", "c", "d"],
        "every record once, then again from the replay's offset"
    );
}

#[test]
fn a_source_that_fails_pass_after_pass_is_reset_twice_then_opened_again() {
    let (mut runner, topic, _) = runner(&["a"], Limits::default());
    topic.lock().expect("topic").failing_commits = 10;
    for _ in 0..2 {
        assert!(pass(&mut runner).is_err());
        runner.failed_passes += 1;
        runner.recover();
        assert!(runner.active.is_some(), "a reset first");
    }
    assert!(pass(&mut runner).is_err());
    runner.failed_passes += 1;
    runner.recover();
    assert_eq!(topic.lock().expect("topic").resets, 2);
    assert!(
        runner.active.is_none(),
        "the third failure in a row opens the source again"
    );
}

#[test]
fn a_source_that_cannot_go_on_is_dropped_to_be_opened_again() {
    let (mut runner, topic, _) = runner(&["a"], Limits::default());
    {
        let mut topic = topic.lock().expect("topic");
        topic.failing_commits = 1;
        topic.broken = true;
    }
    assert!(pass(&mut runner).is_err());
    runner.recover();
    assert!(
        runner.active.is_none(),
        "the next loop loads the function afresh"
    );
}

#[test]
fn a_retried_event_holds_its_partition_then_is_dead_lettered_once_its_retries_are_spent() {
    let limits = Limits {
        max_retries: 2,
        retry_backoff_ms: 1,
        ..Limits::default()
    };
    let (mut runner, topic, _) = runner(&["a", "retry", "c"], limits);
    assert!(pass(&mut runner).expect("first pass"));
    assert_eq!(
        topic.lock().expect("topic").committed,
        1,
        "up to the retried event"
    );
    assert!(
        !pass(&mut runner).expect("held"),
        "the partition waits out the backoff"
    );
    // Two deliveries more: the first retries again, the second has spent the retries.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(10));
        assert!(pass(&mut runner).expect("a delivery"));
    }
    let topic = topic.lock().expect("topic");
    assert_eq!(topic.committed, 3);
    assert_eq!(values(&topic.outputs, "out"), vec!["a", "c"]);
    let dead: Vec<&Output> = topic
        .outputs
        .iter()
        .filter(|o| o.topic == "f-dlq")
        .collect();
    assert_eq!(dead.len(), 1);
    let kind = dead[0].record.header("streamfn.failure.kind");
    assert_eq!(kind, Some(&b"retry-exhausted"[..]));
    assert!(
        runner
            .hold
            .next_release(std::time::Instant::now())
            .is_none()
    );
}

#[test]
fn under_a_backlog_the_next_records_are_read_during_a_pass_and_a_retry_drops_them() {
    let limits = Limits {
        max_batch: 2,
        max_retries: 1,
        retry_backoff_ms: 1,
        ..Limits::default()
    };
    // The retried record comes in the third pass, which reads ahead of it.
    let inputs: Vec<String> = (0..48)
        .map(|i| match i {
            13 => "retry".to_owned(),
            i => format!("v{i}"),
        })
        .collect();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let (mut runner, topic, _) = runner(&inputs, limits);
    assert!(runner.pass().expect("the first pass"));
    {
        let topic = topic.lock().expect("topic");
        assert_eq!(topic.committed, 0, "its commit waits for the next pass");
        // The pass ran four records (twice a batch) and read the next four meanwhile.
        assert_eq!(topic.read_to, 8, "read ahead");
    }
    let mut passes = 0;
    loop {
        let worked = runner.pass().expect("a pass");
        if !worked && runner.hold.next_release(Instant::now()).is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        passes += 1;
        assert!(passes < 1000, "the runner never drained its partition");
    }
    let topic = topic.lock().expect("topic");
    assert_eq!(topic.committed, 48);
    let want: Vec<&str> = inputs.iter().copied().filter(|v| *v != "retry").collect();
    assert_eq!(values(&topic.outputs, "out"), want, "each once, in order");
    assert_eq!(values(&topic.outputs, "f-dlq").len(), 1, "the retried one");
}

/// Partitions `0..n` of `in`, each with its own records and committed offset.
struct Partitioned {
    topics: Vec<Arc<Mutex<Topic>>>,
    cursors: Vec<Option<u64>>,
}

impl Source for Partitioned {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        Ok((0..self.topics.len() as u32).collect())
    }

    fn wait(&mut self, _timeout: Duration) {}

    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        let topic = self.topics[partition as usize].lock().expect("topic");
        let cursor = &mut self.cursors[partition as usize];
        let from = cursor.unwrap_or(topic.committed) as usize;
        let events: Vec<InputEvent> = topic.records.iter().skip(from).take(max).cloned().collect();
        *cursor = Some((from + events.len()) as u64);
        Ok(events)
    }

    fn state(&mut self, _partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        Ok((Box::new(MemoryState::default()), i64::MIN))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        for commit in commits {
            let mut topic = self.topics[commit.partition as usize]
                .lock()
                .expect("topic");
            if let Some((_, next)) = commit.offsets.iter().find(|(t, _)| t == "in") {
                topic.committed = *next;
            }
            topic.outputs.extend(commit.effects.outputs.iter().cloned());
        }
        Ok(())
    }

    fn rewind(&mut self, partition: u32) {
        self.cursors[partition as usize] = None;
    }

    fn reset(&mut self) -> Result<()> {
        self.cursors.iter_mut().for_each(|c| *c = None);
        Ok(())
    }

    fn replay(&mut self, _partition: u32, _version: u32, _replay: &Replay) -> Result<()> {
        bail!("no replays in this test")
    }
}

/// Which partitions are inside a call now, and the most that ever were at once.
#[derive(Default)]
struct Occupancy {
    inside: Mutex<Vec<u32>>,
    most: AtomicUsize,
    overlaps: AtomicUsize,
}

/// Echoes each event, holding its partition for a moment and noting who else is inside.
struct Watched(Arc<Occupancy>);

impl Guest for Watched {
    fn handle(&mut self, state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        let partition = events[0].partition;
        {
            let mut inside = self.0.inside.lock().expect("occupancy");
            if inside.contains(&partition) {
                self.0.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            inside.push(partition);
            self.0.most.fetch_max(inside.len(), Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(3));
        let result = Echo.handle(state, events);
        let mut inside = self.0.inside.lock().expect("occupancy");
        if let Some(at) = inside.iter().position(|p| *p == partition) {
            inside.remove(at);
        }
        result
    }

    fn on_timers(
        &mut self,
        state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        Echo.on_timers(state, partition, stream_time_ms, fired)
    }
}

impl Guests for Arc<Occupancy> {
    fn instantiate(&self) -> Result<Box<dyn Guest>> {
        Ok(Box::new(Watched(self.clone())))
    }
}

#[test]
fn partitions_run_on_workers_at_the_same_time_but_each_on_one_worker_at_a_time() {
    let limits = Limits {
        max_batch: 10,
        ..Limits::default()
    };
    let topics: Vec<Arc<Mutex<Topic>>> = (0..4)
        .map(|partition| {
            let records = (0..200)
                .map(|offset| InputEvent {
                    topic: "in".into(),
                    offset,
                    record: Record {
                        timestamp_ms: offset as i64,
                        value: Some(format!("{partition}-{offset}").into_bytes()),
                        ..Record::default()
                    },
                })
                .collect();
            Arc::new(Mutex::new(Topic {
                records,
                ..Topic::default()
            }))
        })
        .collect();
    let (mut runner, _, _) = runner(&[], limits.clone());
    // More workers than partitions: only the runner keeps a partition to one of them.
    runner.context.workers = Workers::start(8).expect("workers");
    let occupancy = Arc::new(Occupancy::default());
    {
        let active = runner.active.as_mut().expect("active");
        active.current.template =
            Dispatcher::new(Arc::new(occupancy.clone()), limits, Default::default());
        active.source = Box::new(Partitioned {
            topics: topics.clone(),
            cursors: vec![None; 4],
        });
    }
    let mut passes = 0;
    while runner.pass().expect("a pass") {
        passes += 1;
        assert!(passes < 1000, "the runner never drained its partitions");
    }
    assert_eq!(
        occupancy.overlaps.load(Ordering::SeqCst),
        0,
        "a partition ran twice at once"
    );
    assert_eq!(
        occupancy.most.load(Ordering::SeqCst),
        4,
        "every partition ran at the same time as the others"
    );
    for (partition, topic) in topics.iter().enumerate() {
        let topic = topic.lock().expect("topic");
        let want: Vec<String> = (0..200).map(|o| format!("{partition}-{o}")).collect();
        assert_eq!(
            values(&topic.outputs, "out"),
            want,
            "partition {partition} in order, once each"
        );
        assert_eq!(topic.committed, 200);
    }
}

/// Counts its events in state key `n` and emits each count; also keeps the count under
/// one of five keys and deletes another, so that writes grow, shrink and free state.
struct Counter;

impl Guest for Counter {
    fn handle(&mut self, mut state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        for _ in events {
            let n: u64 = state
                .get(b"n")
                .expect("memory state reads")
                .map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap_or(0));
            let next = (n + 1).to_string().into_bytes();
            let write = |state: &mut PartitionState, key: String, value: Option<Vec<u8>>| {
                state
                    .write(key.into_bytes(), value)
                    .expect("memory state counts");
            };
            write(&mut state, "n".into(), Some(next.clone()));
            write(&mut state, format!("seen-{}", n % 5), Some(next.clone()));
            write(&mut state, format!("seen-{}", (n + 2) % 5), None);
            state.current.outputs.push(Output {
                topic: "out".into(),
                fallback_partition: 0,
                record: Record {
                    value: Some(next),
                    ..Record::default()
                },
            });
            outcomes.push(Outcome::Ok);
        }
        (state, Ok((outcomes, 1)))
    }

    fn on_timers(
        &mut self,
        state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        Echo.on_timers(state, partition, stream_time_ms, fired)
    }
}

struct Counters;

impl Guests for Counters {
    fn instantiate(&self) -> Result<Box<dyn Guest>> {
        Ok(Box::new(Counter))
    }
}

/// What a [`Stateful`] source did, in order.
type SourceLog = Arc<Mutex<Vec<&'static str>>>;

/// One partition whose commits keep state, and a log of what each pass read and when
/// commits happened.
struct Stateful {
    records: MemorySource,
    state: Arc<Mutex<MemoryState>>,
    /// "read" for each fetch that found records, "commit" for each commit.
    log: SourceLog,
    /// The bytes of state held, as the commits' counted growth adds up.
    held: i64,
}

impl Source for Stateful {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        Ok(vec![0])
    }

    fn wait(&mut self, _timeout: Duration) {}

    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        let events = self.records.fetch(partition, max)?;
        if !events.is_empty() {
            self.log.lock().expect("log").push("read");
        }
        Ok(events)
    }

    fn state(&mut self, _partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        let snapshot = self.state.lock().expect("state").clone();
        Ok((Box::new(snapshot), i64::MIN))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        let writes: Vec<_> = commits.iter().map(|c| c.effects.state.clone()).collect();
        let growth: i64 = commits
            .iter()
            .map(|c| c.state_growth.expect("a runner counts what its writes add"))
            .sum();
        self.records.commit(commits)?;
        let mut state = self.state.lock().expect("state");
        for (key, value) in writes.into_iter().flatten() {
            match value {
                Some(value) => state.state.insert(key, value),
                None => state.state.remove(&key),
            };
        }
        self.held += growth;
        let held: usize = state.state.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(
            self.held, held as i64,
            "the counted growth adds up to the state"
        );
        self.log.lock().expect("log").push("commit");
        Ok(())
    }

    fn rewind(&mut self, partition: u32) {
        self.records.rewind(partition);
    }

    fn reset(&mut self) -> Result<()> {
        self.records.reset()
    }

    fn replay(&mut self, partition: u32, version: u32, replay: &Replay) -> Result<()> {
        self.records.replay(partition, version, replay)
    }
}

/// A runner of a counter over `n` events of one partition whose commits keep state.
fn counting(n: usize) -> (Runner, Arc<Mutex<Topic>>, SourceLog) {
    let limits = Limits {
        max_batch: 10,
        ..Limits::default()
    };
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let (mut runner, topic, _) = runner(&values, limits.clone());
    let log = Arc::new(Mutex::new(Vec::new()));
    let active = runner.active.as_mut().expect("active");
    active.current.template = Dispatcher::new(Arc::new(Counters), limits, Default::default());
    active.source = Box::new(Stateful {
        records: MemorySource {
            topic: topic.clone(),
            cursor: None,
        },
        state: Arc::new(Mutex::new(MemoryState::default())),
        log: log.clone(),
        held: 0,
    });
    (runner, topic, log)
}

#[test]
fn the_next_pass_reads_over_the_state_of_the_pass_whose_commit_is_under_way() {
    let (mut runner, topic, log) = counting(300);
    let mut passes = 0;
    while runner.pass().expect("a pass") {
        passes += 1;
        assert!(passes < 1000, "the runner never drained its partition");
    }
    let log = log.lock().expect("log");
    assert!(
        log.windows(2).any(|w| w == ["read", "read"]),
        "a pass read before the previous one committed: {log:?}"
    );
    let topic = topic.lock().expect("topic");
    let want: Vec<String> = (1..=300).map(|n| n.to_string()).collect();
    assert_eq!(
        values(&topic.outputs, "out"),
        want,
        "every count once, in order"
    );
    assert_eq!(topic.committed, 300);
}

#[test]
fn a_failed_commit_drops_the_pass_run_over_it_and_both_run_again() {
    let (mut runner, topic, _) = counting(300);
    assert!(runner.pass().expect("the first pass"));
    topic.lock().expect("topic").failing_commits = 1;
    let err = runner.pass().expect_err("the first pass's commit fails");
    assert!(format!("{err:#}").contains("broker went away"), "{err:#}");
    runner.recover();
    while runner.pass().expect("a pass") {}
    let topic = topic.lock().expect("topic");
    let want: Vec<String> = (1..=300).map(|n| n.to_string()).collect();
    assert_eq!(
        values(&topic.outputs, "out"),
        want,
        "nothing of the dropped passes was committed, and everything ran again"
    );
}
