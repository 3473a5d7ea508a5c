//! `fnctl replay`: moves a running function's inputs back, to process them again.

use anyhow::{Context as _, Result};
use clap::{ArgGroup, Args};

use streamfn_host::model::deployment::{Replay as ReplaySpec, ReplayFrom};

use super::{Globals, parse_time};
use crate::output::{self, Format};

/// Process a running function's inputs again: from the oldest records kept, from a time,
/// or from given offsets, its state kept or cleared. Each partition moves back once, at a
/// batch boundary, in one commit with its state: a crash leaves none half replayed. The
/// replay is a new version of the function, so `fnctl versions` lists it.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("where").required(true).args(["from", "from_time", "from_offsets"])))]
pub struct Replay {
    /// Function name.
    name: String,
    /// From the oldest record each input partition keeps.
    #[arg(long, value_enum)]
    from: Option<FromArg>,
    /// From the first record of each input partition at or after this time: RFC 3339
    /// in UTC (2026-01-01T00:00:00Z) or milliseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from_time: Option<i64>,
    /// From this offset of an input partition (repeat); partitions not named keep their
    /// committed offsets.
    #[arg(long = "from-offset", value_name = "TOPIC:PARTITION:OFFSET", value_parser = parse_offset)]
    from_offsets: Vec<(String, u32, u64)>,
    /// Start the state over (values, timers and stream time), as a fresh deployment would.
    #[arg(long)]
    reset_state: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FromArg {
    /// The oldest record kept.
    Earliest,
}

/// Parses `TOPIC:PARTITION:OFFSET`.
fn parse_offset(s: &str) -> Result<(String, u32, u64), String> {
    let mut parts = s.rsplitn(3, ':');
    let (offset, partition, topic) = (parts.next(), parts.next(), parts.next());
    match (topic, partition, offset) {
        (Some(topic), Some(partition), Some(offset)) if !topic.is_empty() => Ok((
            topic.to_owned(),
            partition
                .parse()
                .map_err(|_| format!("{partition:?} is not a partition number"))?,
            offset
                .parse()
                .map_err(|_| format!("{offset:?} is not an offset"))?,
        )),
        _ => Err(format!("expected TOPIC:PARTITION:OFFSET, got {s:?}")),
    }
}

impl Replay {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let from = match (self.from, self.from_time) {
            (Some(FromArg::Earliest), _) => ReplayFrom::Earliest,
            (None, Some(time_ms)) => ReplayFrom::Time(time_ms),
            (None, None) => ReplayFrom::Offsets(self.from_offsets),
        };
        let replay = ReplaySpec {
            from,
            reset_state: self.reset_state,
            until: Vec::new(),
        };
        let deployment = globals
            .client()?
            .replay(&self.name, &replay)
            .with_context(|| format!("{} was not replayed", self.name))?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                println!(
                    "replaying {} as version {}{}; `fnctl status {}` shows its progress",
                    self.name,
                    deployment.version,
                    if self.reset_state {
                        ", its state started over"
                    } else {
                        ""
                    },
                    self.name
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_offset;

    #[test]
    fn offsets_name_topic_partition_and_offset() {
        assert_eq!(parse_offset("events:2:150"), Ok(("events".into(), 2, 150)));
        assert_eq!(parse_offset("a:b:0:7"), Ok(("a:b".into(), 0, 7)));
        assert!(parse_offset("events:2").is_err());
        assert!(parse_offset(":0:1").is_err());
        assert!(parse_offset("events:x:1").is_err());
    }
}
