//! Checksums of what the embedded store holds. Every record, state value and document is
//! stored sealed: a CRC32C (as Kafka's record batches carry) over where it is stored and
//! its bytes, then the bytes. A value read back is opened against the place it was read
//! from, so a changed byte, or a value that turns up under another key, is found out.

use super::tables::STORE_FILE;

/// The words for damage found in the store: what is damaged, and what to do.
pub fn damaged(what: &str) -> String {
    format!(
        "{what} is damaged in the store {STORE_FILE} (it fails its checksum); `fnctl check --data-dir DIR` lists all that is damaged"
    )
}

/// Bytes the seal adds in front of a value.
pub const SEAL_BYTES: usize = 4;

fn checksum(place: &[&[u8]], bytes: &[u8]) -> u32 {
    let mut crc = 0;
    for part in place {
        crc = crc32c::crc32c_append(crc, &(part.len() as u32).to_le_bytes());
        crc = crc32c::crc32c_append(crc, part);
    }
    crc32c::crc32c_append(crc, bytes)
}

/// `bytes` sealed for storage at `place`.
pub fn seal(place: &[&[u8]], bytes: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(SEAL_BYTES + bytes.len());
    sealed.extend_from_slice(&checksum(place, bytes).to_le_bytes());
    sealed.extend_from_slice(bytes);
    sealed
}

/// The bytes sealed in `stored`, if it is what was sealed for `place`.
pub fn open<'a>(place: &[&[u8]], stored: &'a [u8]) -> Option<&'a [u8]> {
    let (crc, bytes) = stored.split_first_chunk::<SEAL_BYTES>()?;
    (u32::from_le_bytes(*crc) == checksum(place, bytes)).then_some(bytes)
}

/// Seals `framed` in place for `place`: its first [`SEAL_BYTES`] were left for the seal,
/// and the rest is what is sealed.
pub fn seal_in_place(place: &[&[u8]], framed: &mut [u8]) {
    let crc = checksum(place, &framed[SEAL_BYTES..]);
    framed[..SEAL_BYTES].copy_from_slice(&crc.to_le_bytes());
}

/// Seals the batch of records `framed` (see [`seal_in_place`]) where it is stored: its
/// topic (by id), partition and last offset.
pub fn seal_batch(topic: u32, partition: u32, last: u64, framed: &mut [u8]) {
    let place = record_place(topic, partition, last);
    seal_in_place(&[b"batch", &place[0], &place[1], &place[2]], framed);
}

/// The batch of records stored at `topic`, `partition`, `last`, if intact.
pub fn open_batch(topic: u32, partition: u32, last: u64, stored: &[u8]) -> Option<&[u8]> {
    let place = record_place(topic, partition, last);
    open(&[b"batch", &place[0], &place[1], &place[2]], stored)
}

/// A record sealed where store formats 2 and 3 stored it, one per row: its topic (by
/// id), partition and offset.
#[cfg(test)]
pub fn seal_record(topic: u32, partition: u32, offset: u64, encoded: &[u8]) -> Vec<u8> {
    seal(
        &record_place(topic, partition, offset)
            .each_ref()
            .map(|p| &p[..]),
        encoded,
    )
}

/// The encoded record stored one per row at `topic`, `partition`, `offset` (store formats
/// 2 and 3), if intact.
pub fn open_record(topic: u32, partition: u32, offset: u64, stored: &[u8]) -> Option<&[u8]> {
    open(
        &record_place(topic, partition, offset)
            .each_ref()
            .map(|p| &p[..]),
        stored,
    )
}

fn record_place(topic: u32, partition: u32, offset: u64) -> [[u8; 8]; 3] {
    [
        u64::from(topic).to_be_bytes(),
        u64::from(partition).to_be_bytes(),
        offset.to_be_bytes(),
    ]
}

/// A state value sealed where it is stored: its function, partition and key.
pub fn seal_state(function: &str, partition: u32, key: &[u8], value: &[u8]) -> Vec<u8> {
    seal(
        &[b"state", function.as_bytes(), &partition.to_be_bytes(), key],
        value,
    )
}

/// The state value stored under `function`, `partition`, `key`, if intact.
pub fn open_state<'a>(
    function: &str,
    partition: u32,
    key: &[u8],
    stored: &'a [u8],
) -> Option<&'a [u8]> {
    open(
        &[b"state", function.as_bytes(), &partition.to_be_bytes(), key],
        stored,
    )
}

/// A document (topic settings, a deployment history) of `kind` sealed under `name`.
pub fn seal_doc(kind: &str, name: &str, doc: &[u8]) -> Vec<u8> {
    seal(&[kind.as_bytes(), name.as_bytes()], doc)
}

/// The document of `kind` stored under `name`, if intact.
pub fn open_doc<'a>(kind: &str, name: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
    open(&[kind.as_bytes(), name.as_bytes()], stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed_and_unchanged() {
        let sealed = seal(&[b"state", b"f", b"k"], b"value");
        assert_eq!(open(&[b"state", b"f", b"k"], &sealed), Some(&b"value"[..]));
        assert_eq!(open(&[b"state", b"f", b"other"], &sealed), None, "moved");
        assert_eq!(
            open(&[b"state", b"fk", b""], &sealed),
            None,
            "parts are delimited"
        );
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x10;
            assert_eq!(open(&[b"state", b"f", b"k"], &flipped), None, "byte {i}");
        }
        assert_eq!(
            open(&[b"state", b"f", b"k"], &sealed[..3]),
            None,
            "cut short"
        );
        let empty = seal(&[b"x"], b"");
        assert_eq!(open(&[b"x"], &empty), Some(&b""[..]));
    }
}
