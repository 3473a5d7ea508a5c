//! The dispatcher driven by a scripted guest, without a sandbox: each event's value is a
//! script (`set k v; emit v; timer k at; trap; burn; reject why; retry why`), and each
//! timer's key says what its handler does. Every call is written to a journal.

use std::sync::{Arc, Mutex};

use super::*;
use crate::model::effects::Output;
use crate::model::failure::HostError;
use crate::model::format::Format;
use crate::model::record::Record;
use crate::sandbox::CallFailure;
use crate::schema::Decoder;
use crate::state::MemoryState;

/// The calls a scripted guest received, as text.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().expect("journal").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().expect("journal").clone()
    }
}

struct Script {
    journal: Journal,
}

struct Scripts {
    journal: Journal,
}

impl Guests for Scripts {
    fn instantiate(&self) -> Result<Box<dyn Guest>> {
        self.journal.push("new instance".into());
        Ok(Box::new(Script {
            journal: self.journal.clone(),
        }))
    }
}

fn trap(error: impl Into<wasmtime::Error>) -> CallFailure {
    CallFailure {
        error: error.into(),
        memory_exceeded: false,
        stderr: "panicked: poison".into(),
    }
}

fn emit(state: &mut PartitionState, topic: &str, partition: u32, value: String) {
    state.current.outputs.push(Output {
        topic: topic.to_owned(),
        fallback_partition: partition,
        record: Record {
            value: Some(value.into_bytes()),
            ..Record::default()
        },
    });
}

impl Guest for Script {
    fn handle(&mut self, mut state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        let first = events.first().map_or(0, |e| e.offset);
        self.journal
            .push(format!("handle {first}..{}", first + events.len() as u64));
        let mut outcomes = Vec::new();
        for event in events {
            let value = event.value.clone().unwrap_or_default();
            // A script may come as a JSON string, for the tests of JSON inputs.
            let script = serde_json::from_slice::<String>(&value)
                .unwrap_or_else(|_| String::from_utf8(value).expect("a script"));
            let mut outcome = Outcome::Ok;
            for command in script.split(';') {
                let words: Vec<&str> = command.split_whitespace().collect();
                match words.as_slice() {
                    ["set", key, value] => {
                        state.set(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
                    }
                    ["emit", value] => emit(&mut state, "out", event.partition, (*value).into()),
                    ["timer", key, at] => {
                        state.set_timer(key.as_bytes().to_vec(), Some(at.parse().expect("time")))
                    }
                    ["trap"] => {
                        return (state, Err(trap(wasmtime::Trap::UnreachableCodeReached)));
                    }
                    ["burn"] => return (state, Err(trap(wasmtime::Trap::OutOfFuel))),
                    ["storage"] => {
                        let failed = HostError::Storage("the disk is on fire".into());
                        return (state, Err(trap(wasmtime::Error::new(failed))));
                    }
                    ["reject", why] => outcome = Outcome::Reject((*why).into()),
                    ["retry", why] => outcome = Outcome::Retry((*why).into()),
                    [] => {}
                    other => panic!("unknown command {other:?}"),
                }
            }
            outcomes.push(outcome);
        }
        let fuel = 10 * events.len() as u64;
        (state, Ok((outcomes, fuel)))
    }

    fn on_timers(
        &mut self,
        mut state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        let keys: Vec<String> = fired
            .iter()
            .map(|t| format!("{}@{}", String::from_utf8_lossy(&t.key), t.at_ms))
            .collect();
        self.journal
            .push(format!("timers {} at {stream_time_ms}", keys.join(",")));
        for (timer, key) in fired.iter().zip(&keys) {
            match timer.key.as_slice() {
                b"bad" => return (state, Err(trap(wasmtime::Trap::UnreachableCodeReached))),
                b"refuse" => return (state, Ok((Err("not now".into()), 1))),
                b"chain" => state.set_timer(b"chained".to_vec(), Some(timer.at_ms)),
                b"again" => state.set_timer(b"again".to_vec(), Some(timer.at_ms)),
                _ => {}
            }
            emit(&mut state, "fired", partition, key.clone());
        }
        (state, Ok((Ok(()), 1)))
    }
}

fn dispatcher(journal: &Journal) -> Dispatcher {
    let guests = Scripts {
        journal: journal.clone(),
    };
    Dispatcher::new(Arc::new(guests), Limits::default(), Gauge::default())
}

/// Events at offsets from 0, each at timestamp `10 * offset` unless its script says.
fn events(scripts: &[&str]) -> Vec<InputEvent> {
    scripts
        .iter()
        .enumerate()
        .map(|(i, script)| InputEvent {
            topic: "in".into(),
            offset: i as u64,
            record: Record {
                timestamp_ms: 10 * i as i64,
                key: Some(format!("k{i}").into_bytes()),
                value: Some(script.as_bytes().to_vec()),
                headers: Vec::new(),
            },
        })
        .collect()
}

fn run_with(
    journal: &Journal,
    base: MemoryState,
    scripts: &[&str],
    retries_spent: Option<(String, u64)>,
) -> Dispatched {
    let batch = Batch {
        partition: 0,
        events: events(scripts),
        stream_time_ms: i64::MIN,
        retries_spent,
    };
    dispatcher(journal)
        .run(PartitionState::new(Box::new(base)), batch)
        .expect("the batch runs")
}

fn run(scripts: &[&str]) -> Dispatched {
    run_with(&Journal::default(), MemoryState::default(), scripts, None)
}

/// The values of the accepted outputs to `topic`, in order.
fn outputs(done: &Dispatched, topic: &str) -> Vec<String> {
    done.state
        .accepted
        .outputs
        .iter()
        .filter(|o| o.topic == topic)
        .map(|o| String::from_utf8_lossy(o.record.value.as_deref().unwrap_or_default()).into())
        .collect()
}

/// (offset, kind) of each dead letter of an event.
fn dead(done: &Dispatched) -> Vec<(u64, FailureKind)> {
    done.report
        .dead_letters
        .iter()
        .map(|d| match &d.origin {
            Origin::Event { offset, .. } => (*offset, d.failure.kind),
            Origin::Timer { at_ms, .. } => (*at_ms as u64, d.failure.kind),
        })
        .collect()
}

fn accepted_keys(done: &Dispatched) -> Vec<String> {
    done.state
        .accepted
        .state
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Eight events that each set a key and emit, but for those at `poison`, which `bad`.
fn scripts_with(poison: &[usize], bad: &'static str) -> Vec<String> {
    (0..8)
        .map(|i| {
            if poison.contains(&i) {
                format!("set p{i} x; emit bad{i}; {bad}")
            } else {
                format!("set s{i} 1; emit v{i}")
            }
        })
        .collect()
}

fn as_strs(scripts: &[String]) -> Vec<&str> {
    scripts.iter().map(String::as_str).collect()
}

#[test]
fn a_poison_event_at_any_position_is_the_only_one_dead_lettered() {
    for poison in 0..8 {
        let scripts = scripts_with(&[poison], "trap");
        let done = run(&as_strs(&scripts));
        assert_eq!(
            dead(&done),
            vec![(poison as u64, FailureKind::Trap)],
            "poison at {poison}"
        );
        let expected: Vec<String> = (0..8)
            .filter(|i| *i != poison)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(outputs(&done, "out"), expected, "poison at {poison}");
        let keys: Vec<String> = (0..8)
            .filter(|i| *i != poison)
            .map(|i| format!("s{i}"))
            .collect();
        assert_eq!(
            accepted_keys(&done),
            keys,
            "the poison's own writes are gone"
        );
        assert_eq!(done.report.processed, 8);
        assert_eq!(done.report.stats.handled, 7);
        assert_eq!(done.report.stats.failures[&FailureKind::Trap], 1);
        assert_eq!(done.report.stream_time_ms, 70);
        let reason = &done.report.dead_letters[0].failure.reason;
        assert!(reason.contains("poison"), "{reason}");
    }
}

#[test]
fn two_poison_events_are_both_found_and_everything_else_kept() {
    for poison in [[0, 7], [2, 5], [3, 4], [6, 7]] {
        let scripts = scripts_with(&poison, "trap");
        let done = run(&as_strs(&scripts));
        let expected: Vec<(u64, FailureKind)> = poison
            .iter()
            .map(|p| (*p as u64, FailureKind::Trap))
            .collect();
        assert_eq!(dead(&done), expected, "poison at {poison:?}");
        assert_eq!(outputs(&done, "out").len(), 6, "poison at {poison:?}");
        assert_eq!(done.report.stats.handled, 6);
    }
}

#[test]
fn an_event_out_of_fuel_is_found_one_event_at_a_time() {
    let journal = Journal::default();
    let scripts = scripts_with(&[5], "burn");
    let done = run_with(&journal, MemoryState::default(), &as_strs(&scripts), None);
    assert_eq!(dead(&done), vec![(5, FailureKind::OutOfFuel)]);
    let calls: Vec<String> = journal
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("handle"))
        .collect();
    let mut expected = vec!["handle 0..8".to_owned()];
    expected.extend((0..8).map(|i| format!("handle {i}..{}", i + 1)));
    assert_eq!(
        calls, expected,
        "no halving: each split would spend the limit again"
    );
    // A failed call leaves its instance behind: a fresh one runs the next call.
    let instances = journal
        .lines()
        .iter()
        .filter(|l| *l == "new instance")
        .count();
    assert_eq!(
        instances, 3,
        "the first, after the batch failed, after the poison"
    );
}

#[test]
fn a_rejected_event_is_dead_lettered_and_its_own_effects_dropped() {
    let journal = Journal::default();
    let done = run_with(
        &journal,
        MemoryState::default(),
        &[
            "set a 1; emit a",
            "set b 1; emit b; reject malformed",
            "set c 1; emit c",
        ],
        None,
    );
    assert_eq!(dead(&done), vec![(1, FailureKind::Rejected)]);
    assert_eq!(done.report.dead_letters[0].failure.reason, "malformed");
    assert_eq!(outputs(&done, "out"), vec!["a", "c"]);
    assert_eq!(accepted_keys(&done), vec!["a", "c"]);
    // The batch, then the events around the rejected one again, and it alone.
    assert_eq!(
        journal
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("handle"))
            .collect::<Vec<_>>(),
        vec!["handle 0..3", "handle 0..1", "handle 1..2", "handle 2..3"]
    );
}

#[test]
fn a_retry_stops_the_batch_at_that_event_and_keeps_what_came_before() {
    let done = run(&["set a 1; emit a", "emit b", "emit c; retry busy", "emit d"]);
    assert!(dead(&done).is_empty());
    assert_eq!(done.report.processed, 2, "the retried event and after wait");
    assert_eq!(
        done.report.retry,
        Some(RetryRequest {
            topic: "in".into(),
            offset: 2,
            reason: "busy".into()
        })
    );
    assert_eq!(outputs(&done, "out"), vec!["a", "b"]);
    assert_eq!(
        done.report.stream_time_ms, 10,
        "stream time of the last event processed"
    );
}

#[test]
fn a_retry_of_an_event_whose_retries_are_spent_is_a_dead_letter() {
    let done = run_with(
        &Journal::default(),
        MemoryState::default(),
        &["emit a", "emit b; retry busy", "emit c"],
        Some(("in".into(), 1)),
    );
    assert_eq!(dead(&done), vec![(1, FailureKind::RetryExhausted)]);
    assert_eq!(done.report.retry, None);
    assert_eq!(done.report.processed, 3);
    assert_eq!(outputs(&done, "out"), vec!["a", "c"]);
}

#[test]
fn a_host_failure_abandons_the_batch() {
    let batch = Batch {
        partition: 0,
        events: events(&["emit a", "storage"]),
        stream_time_ms: 0,
        retries_spent: None,
    };
    let err = dispatcher(&Journal::default())
        .run(PartitionState::new(Box::new(MemoryState::default())), batch)
        .err()
        .expect("an error, not a dead letter");
    assert!(format!("{err:#}").contains("disk is on fire"), "{err:#}");
}

fn with_timers(timers: &[(&str, i64)]) -> MemoryState {
    let mut base = MemoryState::default();
    for (key, at) in timers {
        base.timers.insert(key.as_bytes().to_vec(), *at);
    }
    base
}

#[test]
fn a_timer_fires_right_after_the_event_whose_stream_time_reaches_it() {
    let journal = Journal::default();
    // Events at 0, 10, 20, 30; the timer at 15 fires between the events at 20 and 30.
    let done = run_with(
        &journal,
        with_timers(&[("window", 15)]),
        &["emit a", "emit b", "emit c", "emit d"],
        None,
    );
    assert_eq!(
        journal.lines()[1..],
        ["handle 0..3", "timers window@15 at 20", "handle 3..4"]
    );
    assert_eq!(outputs(&done, "fired"), vec!["window@15"]);
    assert_eq!(done.report.stats.timers_fired, 1);
    assert_eq!(
        done.state.accepted.timers.get(b"window".as_slice()),
        Some(&None),
        "gone"
    );
}

#[test]
fn timers_scheduled_by_timers_fire_in_the_next_round_at_the_same_point() {
    let journal = Journal::default();
    let done = run_with(
        &journal,
        with_timers(&[("chain", 5)]),
        &["emit a", "emit b"],
        None,
    );
    assert_eq!(
        journal.lines()[1..],
        [
            "handle 0..2",
            "timers chain@5 at 10",
            "timers chained@5 at 10"
        ]
    );
    assert_eq!(outputs(&done, "fired"), vec!["chain@5", "chained@5"]);
}

#[test]
fn a_timer_due_within_its_own_call_fires_right_after_the_event_that_reached_it() {
    let journal = Journal::default();
    let done = run_with(
        &journal,
        MemoryState::default(),
        &["timer soon 0; emit a", "emit b"],
        None,
    );
    assert_eq!(
        journal.lines()[1..],
        [
            "handle 0..2",
            "handle 0..1",
            "timers soon@0 at 0",
            "handle 1..2"
        ],
        "the call is run again up to the event that reached the timer"
    );
    assert_eq!(outputs(&done, "fired"), vec!["soon@0"]);
    assert_eq!(outputs(&done, "out"), vec!["a", "b"], "each event once");
}

#[test]
fn a_window_opened_in_a_call_closes_before_the_later_events_of_that_call() {
    let journal = Journal::default();
    // Events at 0, 10, 20, 30; the first schedules a timer at 15, which the event at 20
    // reaches: it fires between that event and the one at 30, as it would in batches of one.
    let done = run_with(
        &journal,
        MemoryState::default(),
        &["timer window 15; emit a", "emit b", "emit c", "emit d"],
        None,
    );
    assert_eq!(
        journal.lines()[1..],
        [
            "handle 0..4",
            "handle 0..3",
            "timers window@15 at 20",
            "handle 3..4"
        ]
    );
    let order: Vec<String> = done
        .state
        .accepted
        .outputs
        .iter()
        .map(|o| String::from_utf8_lossy(o.record.value.as_deref().unwrap_or_default()).into())
        .collect();
    assert_eq!(order, ["a", "b", "c", "window@15", "d"]);
    assert_eq!(done.report.stats.handled, 4, "each event handled once");
}

#[test]
fn a_timer_that_keeps_scheduling_itself_is_bounded_per_event() {
    let journal = Journal::default();
    let done = run_with(&journal, with_timers(&[("again", 0)]), &["emit a"], None);
    let rounds = journal
        .lines()
        .iter()
        .filter(|l| l.starts_with("timers"))
        .count();
    assert_eq!(rounds, timers::TIMER_ROUNDS);
    assert_eq!(outputs(&done, "out"), vec!["a"], "the event still runs");
    assert_eq!(
        done.state.accepted.timers.get(b"again".as_slice()),
        Some(&Some(0)),
        "the rest waits for the next event"
    );
}

#[test]
fn a_failing_timer_is_dead_lettered_and_the_others_fire() {
    let done = run_with(
        &Journal::default(),
        with_timers(&[("a", 1), ("bad", 2), ("refuse", 3), ("z", 4)]),
        &["emit x", "emit y"],
        None,
    );
    // Every timer is due once the event at 10 is handled; they fire in one call, which
    // fails, then one by one.
    assert_eq!(outputs(&done, "fired"), vec!["a@1", "z@4"]);
    assert_eq!(
        dead(&done),
        vec![(2, FailureKind::Trap), (3, FailureKind::Rejected)]
    );
    let letter = &done.report.dead_letters[0];
    assert_eq!(letter.record.key.as_deref(), Some(&b"bad"[..]));
    assert_eq!(letter.record.value, None);
}

#[test]
fn a_value_that_does_not_decode_is_dead_lettered_unseen_and_the_rest_handled() {
    let journal = Journal::default();
    let formats = [("in".to_owned(), Format::Json)].into_iter().collect();
    let mut dispatcher = dispatcher(&journal).with_formats(
        Arc::new(Decoder::new(formats, Format::Raw, None)),
        Arc::default(),
    );
    let batch = Batch {
        partition: 0,
        events: events(&["\"emit a\"", "emit b", "\"emit c\""]),
        stream_time_ms: i64::MIN,
        retries_spent: None,
    };
    let done = dispatcher
        .run(PartitionState::new(Box::new(MemoryState::default())), batch)
        .expect("the batch runs");
    assert_eq!(outputs(&done, "out"), ["a", "c"]);
    assert_eq!(dead(&done), [(1, FailureKind::DecodeError)]);
    let letter = &done.report.dead_letters[0];
    assert!(
        letter.failure.reason.contains("not JSON"),
        "{}",
        letter.failure.reason
    );
    assert_eq!(letter.record.value.as_deref(), Some(&b"emit b"[..]));
    assert_eq!(done.report.processed, 3);
    // The function never saw the event it could not have read.
    assert_eq!(
        journal.lines(),
        ["new instance", "handle 0..1", "handle 2..3"]
    );
}
