//! The store file of the embedded log: one transactional redb database under the data
//! directory (opened through cap-std) holding topics, records, offsets, state, timers,
//! deployments and components, and the signal that wakes runners when records arrive.
//! Every access goes through [`EmbeddedLog::guard`]: a store that panics on a damaged
//! page answers an error instead, and one whose writes fail (a full disk) is reported
//! and opened again until writes work.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use cap_std::fs::Dir;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::frame::{self, damaged};
use super::journal::Journals;
use super::tables::{
    ARTIFACTS, CHECKPOINTS, DEPLOYMENTS, GAPS, JOURNAL, JOURNAL_FOLDS, JOURNAL_HEADS, OFFSETS,
    PARTITIONS, PRODUCERS, RECORDS, REPLAYS, STATE, STATE_BYTES, STORE_FILE, STREAM_TIME,
    TIMER_KEYS, TIMERS, TOPICS, TopicMeta,
};

/// Left beside a store once it holds data: a store missing where this file is means the
/// store was lost, not that the directory is new.
const STORE_MARK: &str = "streamfn.redb.created";

/// The store's format, and the key it is kept under in [`META`].
/// Format 3 adds the state journal and format 4 keeps records in batches, which an older
/// Streamfn would not read.
const FORMAT: u32 = 4;
const FORMAT_KEY: &str = "format";

/// Facts about the store itself.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Largest record (key, value and headers) accepted, in bytes.
    pub max_record_bytes: usize,
    /// Whether the store is the only copy of what it holds (the embedded log) rather than
    /// a cache of it (the local store of a replica on Kafka): a lost store is then
    /// refused at start instead of started over.
    pub only_copy: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_record_bytes: 1 << 20,
            only_copy: true,
        }
    }
}

/// Why the store cannot be written now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    /// What failed, in words.
    pub reason: String,
    /// Whether the disk is full.
    pub no_space: bool,
}

/// The embedded log and store.
pub struct EmbeddedLog {
    dir: Dir,
    db: RwLock<Option<Arc<Database>>>,
    trouble: Mutex<Option<Trouble>>,
    io_errors: AtomicU64,
    pub(super) topics: RwLock<BTreeMap<String, TopicMeta>>,
    pub(super) config: LogConfig,
    appended: Mutex<u64>,
    appended_signal: Condvar,
    pub(super) journals: Journals,
}

impl EmbeddedLog {
    /// Opens (or creates) the store in `dir`, which every file access goes through.
    pub fn open(dir: &Dir, config: LogConfig) -> Result<EmbeddedLog> {
        let dir = dir.try_clone().context("opening the data directory")?;
        let present = dir.metadata(STORE_FILE).is_ok_and(|m| m.len() > 0);
        if config.only_copy && !present && dir.exists(STORE_MARK) {
            bail!(
                "the store {STORE_FILE} is missing or empty, but this data directory held one: its topics, offsets and state are gone. Put the file back from a backup, or remove {STORE_MARK} to start over with an empty store"
            );
        }
        let db = open_database(&dir)?;
        let log = EmbeddedLog {
            dir,
            db: RwLock::new(Some(Arc::new(db))),
            trouble: Mutex::new(None),
            io_errors: AtomicU64::new(0),
            topics: RwLock::new(BTreeMap::new()),
            config,
            appended: Mutex::new(0),
            appended_signal: Condvar::new(),
            journals: Journals::default(),
        };
        log.init()?;
        log.dir
            .write(STORE_MARK, format!("format {FORMAT}\n"))
            .with_context(|| format!("writing {STORE_MARK}"))?;
        Ok(log)
    }

    fn init(&self) -> Result<()> {
        self.guard("preparing the store", |db| {
            let txn = db.begin_write()?;
            upgrade(&txn)?;
            txn.commit()?;
            Ok(())
        })?;
        let topics = self.guard("reading the topics", |db| {
            let read = db.begin_read()?;
            let table = read.open_table(TOPICS)?;
            let mut topics = BTreeMap::new();
            for item in table.iter()? {
                let (name, stored) = item?;
                let name = name.value();
                let meta: TopicMeta = frame::open_doc("topic", name, stored.value())
                    .and_then(|json| serde_json::from_slice(json).ok())
                    .with_context(|| damaged(&format!("the settings of topic {name}")))?;
                topics.insert(meta.name.clone(), meta);
            }
            Ok(topics)
        })?;
        *self.topics.write().unwrap_or_else(|p| p.into_inner()) = topics;
        Ok(())
    }

    /// The database, unless it is being opened again after a failure.
    fn db(&self) -> Result<Arc<Database>> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner()).clone();
        db.ok_or_else(|| {
            let trouble = self.trouble().map_or_else(String::new, |t| t.reason);
            anyhow!("the store cannot be used until it is opened again after a failure: {trouble}")
        })
    }

    /// Runs `work` on the database. A panic inside the store (a damaged page) comes back
    /// as an error saying so; a failed write marks the store in trouble.
    pub(super) fn guard<T>(
        &self,
        what: &str,
        work: impl FnOnce(&Database) -> Result<T>,
    ) -> Result<T> {
        let db = self.db()?;
        catch_damage(what, || work(&db)).inspect_err(|err| {
            if let Some(trouble) = io_trouble(err) {
                self.fail(trouble);
            }
        })
    }

    fn fail(&self, trouble: Trouble) {
        self.io_errors.fetch_add(1, Ordering::Relaxed);
        let mut current = self.trouble.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none() {
            tracing::error!(
                no_space = trouble.no_space,
                "the store cannot be written: {}; retrying until it can",
                trouble.reason
            );
        }
        let no_space = trouble.no_space || current.as_ref().is_some_and(|t| t.no_space);
        *current = Some(Trouble {
            no_space,
            ..trouble
        });
    }

    /// Why the store cannot be written now, if it cannot.
    pub fn trouble(&self) -> Option<Trouble> {
        self.trouble
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Failed writes and reads of the store file since the replica started.
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    /// Opens a store in trouble again and checks that it takes a write; returns whether
    /// it is well now.
    pub fn recover(&self) -> bool {
        if self.trouble().is_none() {
            return true;
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The file stays locked until the last user of the failed database lets go of it.
        slot.take();
        let probe = open_database(&self.dir).and_then(|db| {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                let probes = meta.get("probes")?.map_or(0, |v| v.value());
                meta.insert("probes", probes + 1)?;
            }
            txn.commit()?;
            Ok(db)
        });
        match probe {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                *self.trouble.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!("the store takes writes again");
                true
            }
            Err(err) => {
                tracing::debug!("the store is not well yet: {err:#}");
                if let Some(trouble) = io_trouble(&err) {
                    self.fail(trouble);
                }
                false
            }
        }
    }

    /// The size of the store file and the free space of the disk it is on, in bytes.
    pub fn usage(&self) -> Result<(u64, u64)> {
        let size = self.dir.metadata(STORE_FILE)?.len();
        let disk = rustix::fs::fstatvfs(&self.dir).context("reading the free disk space")?;
        Ok((size, disk.f_bavail.saturating_mul(disk.f_frsize)))
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

fn open_database(dir: &Dir) -> Result<Database> {
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
    redb::backends::FileBackend::new(file)
        .and_then(|backend| Database::builder().create_with_backend(backend))
        .map_err(|err| match err {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow!(
                "the data directory is in use by another replica (its store {STORE_FILE} is locked)"
            ),
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => anyhow!(
                "the store {STORE_FILE} is damaged past recovery ({why}); `fnctl check --data-dir DIR` tells what can be read"
            ),
            err => anyhow::Error::new(err).context(format!("opening the store {STORE_FILE}")),
        })
}

/// Runs `work`, which reads or writes the store: a panic of the store's reader (on a page
/// damaged past what its own checks catch) comes back as an error saying so.
pub(super) fn catch_damage<T>(what: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(panic) => Err(anyhow!(
            "{} while {what}: {}",
            damaged("a page of the store"),
            panic_text(panic.as_ref())
        )),
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "the store's reader gave up".to_owned())
}

/// The failed I/O behind `err`, if that is what it is.
fn io_trouble(err: &anyhow::Error) -> Option<Trouble> {
    for cause in err.chain() {
        let storage = cause
            .downcast_ref::<redb::StorageError>()
            .or_else(|| match cause.downcast_ref::<redb::CommitError>() {
                Some(redb::CommitError::Storage(s)) => Some(s),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<redb::TransactionError>() {
                Some(redb::TransactionError::Storage(s)) => Some(s),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<redb::TableError>() {
                Some(redb::TableError::Storage(s)) => Some(s),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<redb::DatabaseError>() {
                Some(redb::DatabaseError::Storage(s)) => Some(s),
                _ => None,
            });
        let io = match storage {
            Some(redb::StorageError::Io(io)) => Some(io),
            Some(redb::StorageError::PreviousIo) => {
                return Some(Trouble {
                    reason: "an earlier write to the store failed".to_owned(),
                    no_space: false,
                });
            }
            _ => cause.downcast_ref::<std::io::Error>(),
        };
        if let Some(io) = io {
            return Some(Trouble {
                reason: io.to_string(),
                no_space: matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ),
            });
        }
    }
    None
}

/// Brings the store `txn` writes up to this format: creates every table (so readers open
/// them without checks) and moves what an older format stored into this one's tables.
pub(super) fn upgrade(txn: &redb::WriteTransaction) -> Result<()> {
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let format = if tables.iter().any(|t| t == META.name()) {
        txn.open_table(META)?
            .get(FORMAT_KEY)?
            .map_or(1, |v| v.value() as u32)
    } else if tables.iter().any(|t| t == TOPICS.name()) {
        1
    } else {
        FORMAT
    };
    if format > FORMAT {
        bail!(
            "the store {STORE_FILE} was written by a newer Streamfn (format {format}; this one reads up to {FORMAT})"
        );
    }
    txn.open_table(TOPICS)?;
    txn.open_table(PARTITIONS)?;
    txn.open_table(RECORDS)?;
    txn.open_table(OFFSETS)?;
    txn.open_table(STREAM_TIME)?;
    txn.open_table(STATE)?;
    txn.open_table(TIMERS)?;
    txn.open_table(TIMER_KEYS)?;
    txn.open_table(DEPLOYMENTS)?;
    txn.open_table(ARTIFACTS)?;
    txn.open_table(CHECKPOINTS)?;
    txn.open_table(STATE_BYTES)?;
    txn.open_table(GAPS)?;
    txn.open_table(PRODUCERS)?;
    txn.open_table(REPLAYS)?;
    txn.open_table(JOURNAL)?;
    txn.open_table(JOURNAL_HEADS)?;
    txn.open_table(JOURNAL_FOLDS)?;
    if format < 2 {
        tracing::info!(
            "sealing every stored value with a checksum (store format {format} to {FORMAT})"
        );
        super::migrate::seal_all(txn)?;
    }
    if format < 4 {
        tracing::info!("moving records into batches (store format {format} to {FORMAT})");
        super::migrate::batch_records(txn, format >= 2)?;
    }
    txn.open_table(META)?
        .insert(FORMAT_KEY, u64::from(FORMAT))?;
    Ok(())
}
