//! The store file of the embedded log: one transactional redb database under the data
//! directory (opened through cap-std) holding topics, records, offsets, state, timers,
//! deployments and components, and the signal that wakes runners when records arrive.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::tables::TopicMeta;
use super::tables::{
    ARTIFACTS, CHECKPOINTS, DEPLOYMENTS, LOG, OFFSETS, PARTITIONS, STATE, STREAM_TIME, TIMER_KEYS,
    TIMERS, TOPICS,
};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "streamfn.redb";

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Largest record (key, value and headers) accepted, in bytes.
    pub max_record_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_record_bytes: 1 << 20,
        }
    }
}

/// The embedded log and store.
pub struct EmbeddedLog {
    pub(super) db: Database,
    pub(super) topics: RwLock<BTreeMap<String, TopicMeta>>,
    pub(super) config: LogConfig,
    appended: Mutex<u64>,
    appended_signal: Condvar,
}

impl EmbeddedLog {
    /// Opens (or creates) the store in `dir`, which every file access goes through.
    pub fn open(dir: &cap_std::fs::Dir, config: LogConfig) -> Result<EmbeddedLog> {
        let file = dir
            .open_with(
                STORE_FILE,
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true),
            )
            .with_context(|| format!("opening {STORE_FILE}"))?
            .into_std();
        let db = redb::backends::FileBackend::new(file)
            .and_then(|backend| Database::builder().create_with_backend(backend))
            .map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                    "the data directory is in use by another replica (its store {STORE_FILE} is locked)"
                ),
                err => anyhow::Error::new(err).context(format!("opening the store {STORE_FILE}")),
            })?;
        let log = EmbeddedLog {
            db,
            topics: RwLock::new(BTreeMap::new()),
            config,
            appended: Mutex::new(0),
            appended_signal: Condvar::new(),
        };
        log.init()?;
        Ok(log)
    }

    fn init(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            // Creating every table up front lets readers open them without checks.
            txn.open_table(TOPICS)?;
            txn.open_table(PARTITIONS)?;
            txn.open_table(LOG)?;
            txn.open_table(OFFSETS)?;
            txn.open_table(STREAM_TIME)?;
            txn.open_table(STATE)?;
            txn.open_table(TIMERS)?;
            txn.open_table(TIMER_KEYS)?;
            txn.open_table(DEPLOYMENTS)?;
            txn.open_table(ARTIFACTS)?;
            txn.open_table(CHECKPOINTS)?;
        }
        txn.commit()?;
        let read = self.db.begin_read()?;
        let table = read.open_table(TOPICS)?;
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        for item in table.iter()? {
            let (name, meta) = item?;
            let meta: TopicMeta = serde_json::from_slice(meta.value())
                .with_context(|| format!("reading the settings of topic {}", name.value()))?;
            topics.insert(meta.name.clone(), meta);
        }
        Ok(())
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// A counter that grows with every append; pass it to [`EmbeddedLog::wait_for_append`].
    pub fn append_generation(&self) -> u64 {
        *self.appended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until something is appended after `generation`, or `timeout` passes.
    pub fn wait_for_append(&self, generation: u64, timeout: Duration) {
        let guard = self.appended.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .appended_signal
            .wait_timeout_while(guard, timeout, |g| *g == generation);
    }

    pub(super) fn signal_append(&self) {
        *self.appended.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.appended_signal.notify_all();
    }
}
