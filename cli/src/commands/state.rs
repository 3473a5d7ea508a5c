//! `fnctl state`: reads a function's committed state, the way a service reads a read
//! model (Kafka Streams' interactive queries), from any replica.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use streamfn_host::replica::state::{StateEntry, StateQuery};

use super::Globals;
use crate::output::{self, Format};

/// Read a function's committed state: what its last commit left under a key, or the keys
/// with a prefix. Any replica answers, asking the one that runs the partition; while a
/// partition restores its state, it says so rather than answer.
#[derive(Debug, Subcommand)]
pub enum State {
    /// The value under a key, in the partition the key's input records go to.
    Get(Get),
    /// The entries whose keys start with a prefix, in key order.
    Scan(Scan),
}

/// The value under a key.
#[derive(Debug, Args)]
pub struct Get {
    /// Function name.
    name: String,
    /// The state key (text).
    key: String,
    /// Read this partition instead of the key's.
    #[arg(long)]
    partition: Option<u32>,
}

/// The entries with a prefix.
#[derive(Debug, Args)]
pub struct Scan {
    /// Function name.
    name: String,
    /// Only keys that start with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Start after this key (the last one of a previous page).
    #[arg(long)]
    after: Option<String>,
    /// Most entries (1 to 1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Only this partition [default: every partition].
    #[arg(long)]
    partition: Option<u32>,
}

/// How an entry's value prints for people: its JSON when it is JSON, else its text.
fn shown(entry: &StateEntry) -> String {
    match (&entry.json, &entry.encoding) {
        (Some(json), _) => json.to_string(),
        (None, Some(encoding)) => format!("{} ({encoding})", entry.value),
        (None, None) => entry.value.clone(),
    }
}

impl State {
    /// Runs the subcommand.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let client = globals.client()?;
        match self {
            State::Get(get) => {
                let query = StateQuery {
                    key: Some(get.key.clone()),
                    partition: get.partition,
                    ..StateQuery::default()
                };
                let answer = client.state(&get.name, &query)?;
                if globals.format == Format::Json {
                    return output::json(&answer);
                }
                match answer.entries.first() {
                    Some(entry) => println!("{}", shown(entry)),
                    None => bail!("{} holds nothing under {:?}", get.name, get.key),
                }
                Ok(())
            }
            State::Scan(scan) => {
                let query = StateQuery {
                    prefix: Some(scan.prefix),
                    after: scan.after,
                    limit: Some(scan.limit),
                    partition: scan.partition,
                    ..StateQuery::default()
                };
                let answer = client.state(&scan.name, &query)?;
                if globals.format == Format::Json {
                    return output::json(&answer);
                }
                let rows: Vec<Vec<String>> = answer
                    .entries
                    .iter()
                    .map(|e| vec![e.key.clone(), e.partition.to_string(), shown(e)])
                    .collect();
                output::table(&["KEY", "PARTITION", "VALUE"], &rows);
                Ok(())
            }
        }
    }
}
