//! The buffers of contract 0.2.0 (`wit/0.2.0/function.wit` documents them): a batch of
//! events written in one buffer for the guest, and the effects a guest hands back read
//! from one. Little-endian throughout.

use super::bindings::Event;
use super::bindings::streamfn::function::{emit, types};

/// The length written for an absent `bytes?`.
const NONE: u32 = u32::MAX;

/// Writes the batch of `events` of `partition` into `out`.
pub(super) fn encode_batch(partition: u32, events: &[Event], out: &mut Vec<u8>) {
    out.clear();
    let mut topics: Vec<&str> = Vec::new();
    let mut topic_of = Vec::with_capacity(events.len());
    for event in events {
        let index = match topics.iter().position(|t| *t == event.topic) {
            Some(index) => index,
            None => {
                topics.push(&event.topic);
                topics.len() - 1
            }
        };
        topic_of.push(index as u32);
    }
    let payload: usize = events
        .iter()
        .map(|e| {
            48 + e.key.as_ref().map_or(0, Vec::len)
                + e.value.as_ref().map_or(0, Vec::len)
                + e.headers
                    .iter()
                    .map(|h| 8 + h.key.len() + h.value.len())
                    .sum::<usize>()
        })
        .sum();
    out.reserve(12 + payload + topics.iter().map(|t| 4 + t.len()).sum::<usize>());
    put_u32(out, partition);
    put_u32(out, topics.len() as u32);
    for topic in &topics {
        put_bytes(out, topic.as_bytes());
    }
    put_u32(out, events.len() as u32);
    for (event, topic) in events.iter().zip(topic_of) {
        put_u32(out, topic);
        out.extend_from_slice(&event.offset.to_le_bytes());
        out.extend_from_slice(&event.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&event.stream_time_ms.to_le_bytes());
        put_optional(out, event.key.as_deref());
        put_optional(out, event.value.as_deref());
        put_u32(out, event.headers.len() as u32);
        for header in &event.headers {
            put_bytes(out, header.key.as_bytes());
            put_bytes(out, &header.value);
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => put_bytes(out, bytes),
        None => put_u32(out, NONE),
    }
}

/// One effect a guest handed back.
#[derive(Debug, PartialEq)]
pub(super) enum Effect {
    /// `state.set` of 0.1.0.
    Set(Vec<u8>, Vec<u8>),
    /// `state.delete`.
    Delete(Vec<u8>),
    /// `emit.send`.
    Send(emit::Output),
    /// `timers.schedule`.
    Schedule(Vec<u8>, i64),
    /// `timers.cancel`.
    Cancel(Vec<u8>),
}

/// A buffer of effects that does not follow the encoding.
#[derive(Debug, thiserror::Error)]
#[error("the function handed back effects the host cannot read: {0} (at byte {1})")]
pub struct Malformed(&'static str, usize);

/// Reads the effects in `buf`, in order.
pub(super) fn effects(buf: &[u8]) -> Effects<'_> {
    Effects { buf, at: 0 }
}

/// The effects of a buffer, read one at a time.
pub(super) struct Effects<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Iterator for Effects<'_> {
    type Item = Result<Effect, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let effect = self.effect();
        if effect.is_err() {
            // Nothing after a malformed entry can be trusted.
            self.at = self.buf.len();
        }
        Some(effect)
    }
}

impl Effects<'_> {
    fn effect(&mut self) -> Result<Effect, Malformed> {
        let tag = self.take(1, "an entry's tag")?[0];
        Ok(match tag {
            0 => Effect::Set(self.bytes("a state key")?, self.bytes("a state value")?),
            1 => Effect::Delete(self.bytes("a state key")?),
            2 => {
                let topic = String::from_utf8(self.bytes("a topic")?)
                    .map_err(|_| Malformed("a topic that is not UTF-8", self.at))?;
                let key = self.optional("a record key")?;
                let value = self.optional("a record value")?;
                let count = self.u32("a header count")?;
                let mut headers = Vec::with_capacity(count.min(64) as usize);
                for _ in 0..count {
                    let key = String::from_utf8(self.bytes("a header name")?)
                        .map_err(|_| Malformed("a header name that is not UTF-8", self.at))?;
                    let value = self.bytes("a header value")?;
                    headers.push(types::Header { key, value });
                }
                let timestamp_ms = match self.take(1, "a timestamp flag")?[0] {
                    0 => None,
                    1 => Some(self.i64("a timestamp")?),
                    _ => return Err(Malformed("a timestamp flag other than 0 or 1", self.at)),
                };
                Effect::Send(emit::Output {
                    topic,
                    key,
                    value,
                    headers,
                    timestamp_ms,
                })
            }
            3 => Effect::Schedule(self.bytes("a timer key")?, self.i64("a timer time")?),
            4 => Effect::Cancel(self.bytes("a timer key")?),
            _ => return Err(Malformed("an unknown entry tag", self.at - 1)),
        })
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], Malformed> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(Malformed(what, self.at))?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, Malformed> {
        let mut word = [0; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(word))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, Malformed> {
        let len = self.u32(what)?;
        Ok(self.take(len as usize, what)?.to_vec())
    }

    fn optional(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, Malformed> {
        let len = self.u32(what)?;
        if len == NONE {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize, what)?.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_names_each_topic_once_and_keeps_absent_and_empty_apart() {
        let event = |topic: &str, offset, key: Option<&[u8]>| Event {
            topic: topic.into(),
            partition: 3,
            offset,
            timestamp_ms: -5,
            stream_time_ms: 7,
            key: key.map(<[u8]>::to_vec),
            value: Some(b"v".to_vec()),
            headers: vec![types::Header {
                key: "h".into(),
                value: vec![],
            }],
        };
        let mut buf = Vec::new();
        encode_batch(
            3,
            &[
                event("a", 1, None),
                event("b", 2, Some(b"")),
                event("a", 3, Some(b"k")),
            ],
            &mut buf,
        );
        let mut expected = Vec::new();
        expected.extend_from_slice(&3u32.to_le_bytes());
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b']);
        expected.extend_from_slice(&3u32.to_le_bytes());
        for (topic, offset, key) in [
            (0u32, 1u64, None),
            (1, 2, Some(&b""[..])),
            (0, 3, Some(b"k")),
        ] {
            expected.extend_from_slice(&topic.to_le_bytes());
            expected.extend_from_slice(&offset.to_le_bytes());
            expected.extend_from_slice(&(-5i64).to_le_bytes());
            expected.extend_from_slice(&7i64.to_le_bytes());
            match key {
                None => expected.extend_from_slice(&u32::MAX.to_le_bytes()),
                Some(key) => {
                    expected.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    expected.extend_from_slice(key);
                }
            }
            expected.extend_from_slice(&[1, 0, 0, 0, b'v']);
            expected.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, b'h', 0, 0, 0, 0]);
        }
        assert_eq!(buf, expected);
    }

    #[test]
    fn effects_are_read_in_order_and_a_damaged_buffer_is_refused() {
        let mut buf = vec![0, 1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'w'];
        buf.extend_from_slice(&[2, 1, 0, 0, 0, b't']);
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, b'h', 1, 0, 0, 0, b'x', 1]);
        buf.extend_from_slice(&9i64.to_le_bytes());
        buf.extend_from_slice(&[3, 1, 0, 0, 0, b'z']);
        buf.extend_from_slice(&(-1i64).to_le_bytes());
        buf.extend_from_slice(&[1, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
        let read: Vec<Effect> = effects(&buf).map(|e| e.expect("well formed")).collect();
        assert_eq!(
            read,
            vec![
                Effect::Set(b"k".to_vec(), b"vw".to_vec()),
                Effect::Send(emit::Output {
                    topic: "t".into(),
                    key: None,
                    value: Some(vec![]),
                    headers: vec![types::Header {
                        key: "h".into(),
                        value: b"x".to_vec()
                    }],
                    timestamp_ms: Some(9),
                }),
                Effect::Schedule(b"z".to_vec(), -1),
                Effect::Delete(vec![]),
                Effect::Cancel(vec![]),
            ]
        );
        for damaged in [&buf[..buf.len() - 1], &[9][..], &[0, 200, 0, 0, 0, 1][..]] {
            let last = effects(damaged).last().expect("an entry");
            assert!(last.is_err(), "{damaged:?} read as {last:?}");
        }
    }
}
