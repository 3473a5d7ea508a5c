//! Records as the log stores them: timestamp, key, value and headers, with their compact
//! binary encoding. Not the wire format of Kafka and not the WIT type of the guest.

use anyhow::{Context as _, Result, bail, ensure};

/// A record header.
pub type Header = (String, Vec<u8>);

/// One record of a topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Producer timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Record key; it picks the partition.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in producer order.
    pub headers: Vec<Header>,
}

const ABSENT: u32 = u32::MAX;

impl Record {
    /// Bytes of key, value and headers: what size limits count.
    pub fn payload_len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Encodes the record for storage.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// About the bytes [`Record::encode`] gives, to reserve room for them.
    pub fn encoded_len(&self) -> usize {
        24 + self.payload_len() + 8 * self.headers.len()
    }

    /// Appends the record's encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        put_optional(out, self.key.as_deref());
        put_optional(out, self.value.as_deref());
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (k, v) in &self.headers {
            put_optional(out, Some(k.as_bytes()));
            put_optional(out, Some(v));
        }
    }

    /// Decodes a record written by [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let mut input = Reader { bytes };
        let timestamp_ms = i64::from_le_bytes(input.take_array()?);
        let key = input.optional()?;
        let value = input.optional()?;
        let count = u32::from_le_bytes(input.take_array()?);
        let mut headers = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let k = input.optional()?.context("header without a name")?;
            let v = input.optional()?.unwrap_or_default();
            headers.push((String::from_utf8(k).context("header name is not UTF-8")?, v));
        }
        ensure!(
            input.bytes.is_empty(),
            "{} trailing bytes after record",
            input.bytes.len()
        );
        Ok(Record {
            timestamp_ms,
            key,
            value,
            headers,
        })
    }
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.bytes.len() < n {
            bail!(
                "record truncated: wanted {n} bytes, {} left",
                self.bytes.len()
            );
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn optional(&mut self) -> Result<Option<Vec<u8>>> {
        let len = u32::from_le_bytes(self.take_array()?);
        if len == ABSENT {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let record = Record {
            timestamp_ms: -5,
            key: Some(b"k".to_vec()),
            value: None,
            headers: vec![("a".into(), vec![]), ("b".into(), b"xyz".to_vec())],
        };
        assert_eq!(Record::decode(&record.encode()).expect("decodes"), record);
        let empty = Record {
            key: Some(Vec::new()),
            ..Record::default()
        };
        assert_eq!(Record::decode(&empty.encode()).expect("decodes"), empty);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = Record {
            value: Some(b"hello".to_vec()),
            ..Record::default()
        }
        .encode();
        let err = Record::decode(&bytes[..bytes.len() - 1]).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
