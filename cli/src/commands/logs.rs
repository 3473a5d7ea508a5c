//! `fnctl logs`: a function's own log lines, with the records they were written for.

use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;

use super::Globals;
use crate::output::Format;
use streamfn_host::logbook::LogEntry;

/// Show a function's log lines (what it writes with its log import), each with the
/// partition and offsets of the records being handled. The replica keeps the latest
/// 2000 lines per function; on Kafka each replica has the lines of the partitions it runs.
#[derive(Debug, Args)]
pub struct Logs {
    /// Function name.
    name: String,
    /// Keep printing new lines as they come.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Show only the last N lines first.
    #[arg(long)]
    tail: Option<usize>,
}

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

impl Logs {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let client = globals.client()?;
        let mut lines = client.logs(&self.name, 0, 10_000)?;
        let mut after = lines.last().map_or(0, |e| e.seq);
        if let Some(tail) = self.tail {
            lines.drain(..lines.len().saturating_sub(tail));
        }
        let mut out = std::io::stdout().lock();
        for line in &lines {
            print_line(&mut out, line, globals.format)?;
        }
        if !self.follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            for line in client.logs(&self.name, after, 10_000)? {
                print_line(&mut out, &line, globals.format)?;
                after = line.seq;
            }
        }
    }
}

fn print_line(out: &mut impl std::io::Write, line: &LogEntry, format: Format) -> Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(line)?),
        Format::Text => {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(line.at_ms.max(0) as u64);
            let records = match line.offsets {
                Some((first, last)) if first == last => format!("p{} @{first}", line.partition),
                Some((first, last)) => format!("p{} @{first}..{last}", line.partition),
                None => format!("p{} timer", line.partition),
            };
            writeln!(
                out,
                "{} {:<5} v{} {records:<14} {}",
                humantime::format_rfc3339_millis(at),
                line.level.to_uppercase(),
                line.version,
                line.message
            )
        }
    }
    .context("writing to stdout")?;
    out.flush().context("writing to stdout")
}
