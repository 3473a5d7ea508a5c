//! CPU time by part of a run: this process's threads grouped by their names, and the
//! processes beside it (a broker, a baseline's JVM), read from Linux's `/proc`.

use std::collections::BTreeMap;

/// Clock ticks per second of the times in `/proc` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds by part, as counted since a process or thread started.
#[derive(Clone, Debug, Default)]
pub struct Sample(BTreeMap<&'static str, f64>);

/// The part a thread of this process belongs to, by the name the host gives its threads.
fn part_of(thread: &str) -> &'static str {
    if thread.starts_with("worker-") {
        "workers"
    } else if thread.starts_with("fn-") {
        "runner"
    } else if thread.starts_with("rdk:") {
        "librdkafka"
    } else {
        "other"
    }
}

/// The name and the CPU seconds (user and system) of a `stat` line of `/proc`.
fn times(stat: &str) -> Option<(&str, f64)> {
    // The name is in parentheses and may itself hold spaces or parentheses.
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // After the name: state, then 10 fields, then utime and stime.
    let user: f64 = fields.nth(11)?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((name, (user + system) / TICKS_PER_SECOND))
}

fn read_times(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    times(&stat).map(|(_, seconds)| seconds)
}

impl Sample {
    /// This process's CPU time by part, and that of each of `others` (a part and a pid)
    /// that still runs. Threads that ended count as `other`.
    pub fn take(others: &[(&'static str, u32)]) -> Sample {
        let mut parts = BTreeMap::new();
        let mut live = 0.0;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((name, seconds)) = times(&stat) {
                    *parts.entry(part_of(name)).or_insert(0.0) += seconds;
                    live += seconds;
                }
            }
        }
        let whole = read_times("/proc/self/stat").unwrap_or(live);
        *parts.entry("other").or_insert(0.0) += (whole - live).max(0.0);
        for (part, pid) in others {
            if let Some(seconds) = read_times(&format!("/proc/{pid}/stat")) {
                *parts.entry(*part).or_insert(0.0) += seconds;
            }
        }
        Sample(parts)
    }

    /// The CPU time spent between `earlier` and this sample, by part.
    pub fn since(&self, earlier: &Sample) -> Sample {
        Sample(
            self.0
                .iter()
                .map(|(part, seconds)| {
                    let before = earlier.0.get(part).copied().unwrap_or(0.0);
                    (*part, (seconds - before).max(0.0))
                })
                .collect(),
        )
    }

    /// The CPU seconds of `part`.
    pub fn seconds(&self, part: &str) -> f64 {
        self.0.get(part).copied().unwrap_or(0.0)
    }

    /// The CPU seconds of every part together.
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }
}
