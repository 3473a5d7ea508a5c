//! Guest log lines kept by the replica, newest last, so `fnctl logs` can show and follow
//! a function's own logging with the coordinates of the records being handled. Bounded:
//! the oldest lines of a function go first. Host logs go to `tracing`, not here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::model::clock::now_ms;
use crate::sandbox::LogLine;
use crate::sandbox::bindings::streamfn::function::log::Level;

/// Lines kept per function.
const LINES_PER_FUNCTION: usize = 2000;

/// One guest log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Increases with every line the replica keeps; ask for lines after one you have.
    pub seq: u64,
    /// When it was written, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The function.
    pub function: String,
    /// Its version.
    pub version: u32,
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The partition being handled.
    pub partition: u32,
    /// First and last offsets of the records of the call that wrote it (none for a timer).
    pub offsets: Option<(u64, u64)>,
    /// The text.
    pub message: String,
}

/// The replica's recent guest log lines.
#[derive(Default)]
pub struct LogBook {
    next: AtomicU64,
    lines: Mutex<BTreeMap<String, VecDeque<LogEntry>>>,
}

impl LogBook {
    /// Keeps a line of `function` version `version`.
    pub fn push(&self, function: &str, version: u32, line: LogLine) {
        let level = match line.level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let entry = LogEntry {
            seq: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: now_ms(),
            function: function.to_owned(),
            version,
            level: level.to_owned(),
            partition: line.partition,
            offsets: line.offsets,
            message: line.message,
        };
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let kept = lines.entry(function.to_owned()).or_default();
        if kept.len() >= LINES_PER_FUNCTION {
            kept.pop_front();
        }
        kept.push_back(entry);
    }

    /// Up to `max` lines of `function` after `after`, oldest first.
    pub fn after(&self, function: &str, after: u64, max: usize) -> Vec<LogEntry> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .get(function)
            .map(|kept| {
                kept.iter()
                    .filter(|e| e.seq > after)
                    .take(max)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            level: Level::Info,
            message: message.to_owned(),
            partition: 1,
            offsets: Some((4, 9)),
        }
    }

    #[test]
    fn lines_come_back_in_order_after_a_sequence_number() {
        let book = LogBook::default();
        book.push("f", 1, line("a"));
        book.push("g", 1, line("other"));
        book.push("f", 2, line("b"));
        let all = book.after("f", 0, 10);
        assert_eq!(
            all.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let later = book.after("f", all[0].seq, 10);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].version, 2);
        assert_eq!(later[0].offsets, Some((4, 9)));
    }

    #[test]
    fn the_oldest_lines_go_first() {
        let book = LogBook::default();
        for i in 0..LINES_PER_FUNCTION + 5 {
            book.push("f", 1, line(&i.to_string()));
        }
        let kept = book.after("f", 0, usize::MAX);
        assert_eq!(kept.len(), LINES_PER_FUNCTION);
        assert_eq!(kept[0].message, "5");
    }
}
