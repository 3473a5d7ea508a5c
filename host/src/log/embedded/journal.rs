//! The state journal: a partition's recent state changes, one sealed row per commit, kept
//! in front of the state table and folded into it once they add up to about the state's
//! own size. A commit then writes what it changed in one row instead of a copy of every
//! page of the state table its keys touch, which for a large state is nearly all of them;
//! folding pays that once for many commits. Decoded rows are kept in memory: a row never
//! changes once committed, and its sequence number is never used again.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, btree_map};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context as _, Result};
use redb::{ReadableTable, Table};

use super::frame::{self, damaged};

/// One commit's state changes: `None` deletes the key.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A partition's journal, as its head in [`super::tables::JOURNAL_HEADS`] says: the rows
/// `first..next` are in front of the state table and hold `bytes` of keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    pub first: u64,
    pub next: u64,
    pub bytes: u64,
}

impl Head {
    pub fn from_row((first, next, bytes): (u64, u64, u64)) -> Head {
        Head { first, next, bytes }
    }

    pub fn row(self) -> (u64, u64, u64) {
        (self.first, self.next, self.bytes)
    }

    /// Whether the journal, in front of a state of `held` bytes, is due to be folded.
    fn due(self, held: u64) -> bool {
        self.next - self.first >= MAX_ROWS || self.bytes >= held.clamp(FLOOR, CAP)
    }
}

/// A journal is folded once it holds as many bytes as the state, and at least this many...
const FLOOR: u64 = 1 << 20;
/// ...but never more than this many, so the rows kept in memory stay bounded...
const CAP: u64 = 64 << 20;
/// ...or once it has this many rows, so that a read looks through few of them.
const MAX_ROWS: u64 = 24;
/// A fold is spread over about this many commits, so that no commit pays for all of it...
const FOLD_STEPS: usize = 8;
/// ...each folding at least this many keys (a few in tests, so their folds take steps).
const MIN_FOLD_KEYS: usize = if cfg!(test) { 3 } else { 4096 };

/// Bytes of keys and values `changes` hold.
pub fn bytes_of(changes: &Changes) -> u64 {
    changes
        .iter()
        .map(|(key, value)| (key.len() + value.as_ref().map_or(0, Vec::len)) as u64)
        .sum()
}

/// A journal row sealed where it is stored.
pub fn seal_row(function: &str, partition: u32, seq: u64, changes: &Changes) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(bytes_of(changes) as usize + 9 * changes.len());
    for (key, value) in changes {
        bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
        bytes.extend_from_slice(key);
        match value {
            Some(value) => {
                bytes.push(1);
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                bytes.extend_from_slice(value);
            }
            None => bytes.push(0),
        }
    }
    let (p, s) = (partition.to_be_bytes(), seq.to_be_bytes());
    frame::seal(&[b"journal", function.as_bytes(), &p, &s], &bytes)
}

/// The changes of the journal row stored at `function`, `partition`, `seq`, if intact.
pub fn open_row(function: &str, partition: u32, seq: u64, stored: &[u8]) -> Option<Changes> {
    let (p, s) = (partition.to_be_bytes(), seq.to_be_bytes());
    let mut bytes = frame::open(&[b"journal", function.as_bytes(), &p, &s], stored)?;
    let mut changes = Changes::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?.to_vec();
        let (tag, rest) = bytes.split_first()?;
        bytes = rest;
        let value = match tag {
            1 => Some(take(&mut bytes)?.to_vec()),
            0 => None,
            _ => return None,
        };
        changes.insert(key, value);
    }
    Some(changes)
}

/// Reads one length-prefixed field off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let field = rest.get(..len)?;
    *bytes = &rest[len..];
    Some(field)
}

/// The rows of a journal a reader or a commit sees, oldest first.
#[derive(Clone, Default)]
pub struct Journal {
    rows: Vec<Arc<Changes>>,
}

impl Journal {
    /// The latest change to `key`: `Some(None)` when it was deleted, `None` when the
    /// journal does not have it and the state table answers.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.rows
            .iter()
            .rev()
            .find_map(|row| row.get(key))
            .map(Option::as_deref)
    }

    /// The latest change of every key from `from` on, in key order, deletes included.
    pub fn range_from<'a>(&'a self, from: &[u8]) -> Latest<'a> {
        Latest {
            rows: self
                .rows
                .iter()
                .map(|row| {
                    row.range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
                        .peekable()
                })
                .collect(),
        }
    }
}

/// See [`Journal::range_from`]: the rows' ranges merged, a later row's change winning.
pub struct Latest<'a> {
    rows: Vec<Peekable<RowRange<'a>>>,
}

type RowRange<'a> = btree_map::Range<'a, Vec<u8>, Option<Vec<u8>>>;

impl<'a> Iterator for Latest<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let least = self
            .rows
            .iter_mut()
            .filter_map(|row| row.peek().map(|(key, _)| key.as_slice()))
            .min()?;
        let mut latest = None;
        for row in &mut self.rows {
            if let Some((key, value)) = row.next_if(|(key, _)| key.as_slice() == least) {
                latest = Some((key.as_slice(), value.as_deref()));
            }
        }
        latest
    }
}

/// The entries of a state table read through `journal`'s changes: both in key order, a
/// key the journal has taking the journal's value, a key it deletes left out.
pub fn overlay<'a, E>(
    journal: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    table: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>> {
    let mut journal = journal.peekable();
    let mut table = table.peekable();
    std::iter::from_fn(move || {
        loop {
            let order = match (journal.peek(), table.peek()) {
                (_, Some(Err(_))) => return table.next(),
                (None, None) => return None,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some((changed, _)), Some(Ok((key, _)))) => (*changed).cmp(key.as_slice()),
            };
            if order == Ordering::Equal {
                table.next();
            }
            let from_journal = order != Ordering::Greater;
            if !from_journal {
                return table.next();
            }
            if let Some((key, Some(value))) = journal.next() {
                return Some(Ok((key.to_vec(), value.to_vec())));
            }
        }
    })
}

/// The tables a commit writes state through.
pub struct StateTables<'t> {
    pub state: Table<'t, (&'static str, u32, &'static [u8]), &'static [u8]>,
    pub sizes: Table<'t, (&'static str, u32), u64>,
    pub rows: Table<'t, (&'static str, u32, u64), &'static [u8]>,
    pub heads: Table<'t, (&'static str, u32), (u64, u64, u64)>,
    pub folds: Table<'t, (&'static str, u32), (u64, &'static [u8])>,
}

/// What a commit under way did to journals, for memory to follow once it is committed.
#[derive(Default)]
pub struct Done<'a> {
    written: Written<'a>,
    /// Rows before this sequence number are folded and gone.
    folded: Vec<(&'a str, u32, u64)>,
}

/// Journal rows decoded, by function, partition and sequence number.
#[derive(Default)]
pub struct Journals(Mutex<Kept>);

/// Each function partition's rows kept in memory, by sequence number.
type Kept = HashMap<(String, u32), BTreeMap<u64, Arc<Changes>>>;

/// Journal rows written by a commit under way: not yet in memory, read from here.
pub type Written<'a> = Vec<(&'a str, u32, u64, Arc<Changes>)>;

/// Writes the latest values of `entries` into `function`'s state table on `partition`.
fn write_state<'k>(
    state: &mut Table<'_, (&'static str, u32, &'static [u8]), &'static [u8]>,
    function: &str,
    partition: u32,
    entries: impl Iterator<Item = (&'k [u8], Option<&'k [u8]>)>,
) -> Result<()> {
    for (key, value) in entries {
        match value {
            Some(value) => {
                let sealed = frame::seal_state(function, partition, key, value);
                state.insert((function, partition, key), sealed.as_slice())?;
            }
            None => {
                state.remove((function, partition, key))?;
            }
        }
    }
    Ok(())
}

/// The bytes `function`'s state on `partition` holds after `changes`, from the `held`
/// before them and the size of each value they replace: its latest in `journal`, else in
/// the state table.
fn held_after(
    tables: &StateTables<'_>,
    journal: &Journal,
    function: &str,
    partition: u32,
    mut held: u64,
    changes: &Changes,
) -> Result<u64> {
    for (key, value) in changes {
        let old = match journal.get(key) {
            Some(latest) => latest.map(<[u8]>::len),
            None => tables
                .state
                .get((function, partition, key.as_slice()))?
                .map(|v| v.value().len().saturating_sub(frame::SEAL_BYTES)),
        };
        if let Some(old) = old {
            held = held.saturating_sub((key.len() + old) as u64);
        }
        if let Some(value) = value {
            held += (key.len() + value.len()) as u64;
        }
    }
    Ok(held)
}

impl Journals {
    /// The rows of `function`'s `partition` under `head`: from memory, from `written`, or
    /// read from `table` and kept (a row read there is committed, as only rows in
    /// `written` are not).
    pub fn rows(
        &self,
        table: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
        function: &str,
        partition: u32,
        head: Head,
        written: &Written<'_>,
    ) -> Result<Journal> {
        if head.first == head.next {
            return Ok(Journal::default());
        }
        let mut rows = Vec::with_capacity((head.next - head.first) as usize);
        let mut kept = self.lock();
        let partition_rows = kept.entry((function.to_owned(), partition)).or_default();
        for seq in head.first..head.next {
            if let Some(row) = partition_rows.get(&seq) {
                rows.push(row.clone());
            } else if let Some((.., row)) = written
                .iter()
                .find(|(f, p, s, _)| (*f, *p, *s) == (function, partition, seq))
            {
                rows.push(row.clone());
            } else {
                let what = || {
                    damaged(&format!(
                        "the state journal of function {function} partition {partition} at row {seq}"
                    ))
                };
                let stored = table.get((function, partition, seq))?.with_context(what)?;
                let row = Arc::new(
                    open_row(function, partition, seq, stored.value()).with_context(what)?,
                );
                partition_rows.insert(seq, row.clone());
                rows.push(row);
            }
        }
        Ok(Journal { rows })
    }

    /// Writes `changes` to `function`'s state on `partition` within a commit, counting
    /// the bytes the state then holds from `growth` when the writer counted it: as a new
    /// journal row, or straight into the state table when nothing is in front of it and
    /// the changes are as large as a fold would be; and a step of the fold under way,
    /// which copies the next keys of the rows being folded, their latest values, into the
    /// state table, and drops those rows once every key is copied. Reads go through every
    /// row until then, so what they see never depends on how far a fold has come.
    pub fn commit<'a>(
        &self,
        tables: &mut StateTables<'_>,
        function: &'a str,
        partition: u32,
        changes: &Changes,
        growth: Option<i64>,
        done: &mut Done<'a>,
    ) -> Result<()> {
        let mut head = tables
            .heads
            .get((function, partition))?
            .map_or_else(Head::default, |v| Head::from_row(v.value()));
        let journal = self.rows(&tables.rows, function, partition, head, &done.written)?;
        let held = tables
            .sizes
            .get((function, partition))?
            .map_or(0, |v| v.value());
        let held = match growth {
            Some(growth) => held.saturating_add_signed(growth),
            None => held_after(tables, &journal, function, partition, held, changes)?,
        };
        tables.sizes.insert((function, partition), held)?;
        let mut fold = tables
            .folds
            .get((function, partition))?
            .map(|v| (v.value().0, v.value().1.to_vec()));
        let more = bytes_of(changes);
        if head.first == head.next && fold.is_none() && more >= held.clamp(FLOOR, CAP) {
            let latest = changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
            return write_state(&mut tables.state, function, partition, latest);
        }
        let sealed = seal_row(function, partition, head.next, changes);
        tables
            .rows
            .insert((function, partition, head.next), sealed.as_slice())?;
        let mut rows = journal.rows;
        rows.push(Arc::new(changes.clone()));
        done.written
            .push((function, partition, head.next, rows[rows.len() - 1].clone()));
        head.next += 1;
        head.bytes += more;
        if fold.is_none() && head.due(held) {
            fold = Some((head.next, Vec::new()));
        }
        if let Some((until, from)) = fold {
            let folding = Journal {
                rows: rows[..(until - head.first) as usize].to_vec(),
            };
            let keys: usize = folding.rows.iter().map(|row| row.len()).sum();
            let step = (keys / FOLD_STEPS).max(MIN_FOLD_KEYS);
            let mut latest = folding.range_from(&from).peekable();
            write_state(
                &mut tables.state,
                function,
                partition,
                latest.by_ref().take(step),
            )?;
            match latest.peek() {
                Some((key, _)) => {
                    tables.folds.insert((function, partition), (until, *key))?;
                }
                None => {
                    for seq in head.first..until {
                        tables.rows.remove((function, partition, seq))?;
                    }
                    let folded: u64 = folding.rows.iter().map(|row| bytes_of(row)).sum();
                    head.bytes = head.bytes.saturating_sub(folded);
                    head.first = until;
                    tables.folds.remove((function, partition))?;
                    done.folded.push((function, partition, until));
                }
            }
        }
        tables.heads.insert((function, partition), head.row())?;
        Ok(())
    }

    /// Brings memory up to the commit `done` was of, once it is committed.
    pub fn committed(&self, done: Done<'_>) {
        let mut kept = self.lock();
        for (function, partition, seq, row) in done.written {
            kept.entry((function.to_owned(), partition))
                .or_default()
                .insert(seq, row);
        }
        drop(kept);
        for (function, partition, first) in done.folded {
            self.keep_from(function, partition, first);
        }
    }

    /// Drops from memory the rows of `function`'s `partition` before `first`.
    pub fn keep_from(&self, function: &str, partition: u32, first: u64) {
        let mut kept = self.lock();
        if let Some(rows) = kept.get_mut(&(function.to_owned(), partition)) {
            *rows = rows.split_off(&first);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(entries: &[(&str, Option<&str>)]) -> Arc<Changes> {
        Arc::new(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
                .collect(),
        )
    }

    #[test]
    fn a_row_opens_as_sealed_and_only_where_it_was_sealed() {
        let row = changes(&[("a", Some("1")), ("b", None), ("", Some(""))]);
        let sealed = seal_row("f", 3, 7, &row);
        assert_eq!(open_row("f", 3, 7, &sealed).as_ref(), Some(&*row));
        assert_eq!(open_row("f", 3, 8, &sealed), None, "another row's place");
        assert_eq!(open_row("f", 4, 7, &sealed), None, "another partition's");
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x04;
            assert_eq!(open_row("f", 3, 7, &flipped), None, "byte {i}");
        }
    }

    #[test]
    fn the_latest_row_wins_and_deletes_hide_the_table() {
        let journal = Journal {
            rows: vec![
                changes(&[("a", Some("old")), ("c", Some("c1")), ("d", Some("d1"))]),
                changes(&[("a", Some("new")), ("c", None), ("e", Some("e1"))]),
            ],
        };
        assert_eq!(journal.get(b"a"), Some(Some(&b"new"[..])));
        assert_eq!(journal.get(b"c"), Some(None));
        assert_eq!(journal.get(b"b"), None);
        let latest: Vec<_> = journal.range_from(b"b").collect();
        assert_eq!(
            latest,
            vec![
                (&b"c"[..], None),
                (&b"d"[..], Some(&b"d1"[..])),
                (&b"e"[..], Some(&b"e1"[..]))
            ]
        );
        let table = ["a", "b", "c", "f"]
            .iter()
            .map(|k| Ok::<_, ()>((k.as_bytes().to_vec(), b"table".to_vec())));
        let read: Vec<(Vec<u8>, Vec<u8>)> = overlay(journal.range_from(b""), table)
            .map(|entry| entry.expect("no error"))
            .collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = [
            ("a", "new"),
            ("b", "table"),
            ("d", "d1"),
            ("e", "e1"),
            ("f", "table"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(read, expected);
    }
}
