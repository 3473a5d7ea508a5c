//! The schema registry's framing of a record value: magic byte 0, the writer schema's id
//! as four big-endian bytes, then the payload; and the message indexes that open a
//! Protobuf payload, naming which message of the schema wrote it.

/// The first byte of every framed value.
pub const MAGIC: u8 = 0;

/// Why a value is not framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the five bytes of the frame.
    #[error("the value is {0} bytes, shorter than the 5 of a schema registry frame")]
    Short(usize),
    /// The first byte is not 0.
    #[error("the value starts with byte {0}, not the schema registry's magic byte 0")]
    Magic(u8),
    /// The message indexes of a Protobuf payload are cut short or out of bounds.
    #[error("the Protobuf message indexes are {0}")]
    Indexes(&'static str),
}

/// Most message indexes read: the depth of nesting a schema may name.
const MAX_INDEXES: u64 = 64;

/// A zigzag varint, as the indexes are written, and what follows it.
fn read_varint(bytes: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    let mut raw = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = (raw >> 1) ^ (raw & 1).wrapping_neg();
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(FrameError::Indexes("cut short"))
}

fn write_varint(out: &mut Vec<u8>, value: u64) {
    let mut raw = value << 1;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// The message indexes that open a Protobuf `payload` (the path from the schema's
/// top-level messages down to the one that wrote it), and the message after them. A
/// count of 0 stands for `[0]`, the schema's first message.
pub fn message_indexes(payload: &[u8]) -> Result<(Vec<usize>, &[u8]), FrameError> {
    let (count, mut rest) = read_varint(payload)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if count > MAX_INDEXES {
        return Err(FrameError::Indexes("more than 64 deep"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (index, after) = read_varint(rest)?;
        let index = usize::try_from(index).map_err(|_| FrameError::Indexes("out of bounds"))?;
        indexes.push(index);
        rest = after;
    }
    Ok((indexes, rest))
}

/// `message` opened with `indexes`, written the way Confluent's serializers write them:
/// `[0]` as the single byte 0.
pub fn with_message_indexes(indexes: &[usize], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 1 + indexes.len());
    if indexes == [0] {
        out.push(0);
    } else {
        write_varint(&mut out, indexes.len() as u64);
        for &index in indexes {
            write_varint(&mut out, index as u64);
        }
    }
    out.extend_from_slice(message);
    out
}

/// The schema id and the payload of a framed value.
pub fn unframe(value: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    let Some((&magic, rest)) = value.split_first() else {
        return Err(FrameError::Short(0));
    };
    if value.len() < 5 {
        return Err(FrameError::Short(value.len()));
    }
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    let (id, payload) = rest.split_at(4);
    Ok((u32::from_be_bytes([id[0], id[1], id[2], id[3]]), payload))
}

/// `payload` framed with schema `id`.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_goes_round() {
        let framed = frame(258, b"datum");
        assert_eq!(framed[..5], [0, 0, 0, 1, 2]);
        assert_eq!(unframe(&framed), Ok((258, &b"datum"[..])));
        assert_eq!(unframe(&frame(7, b"")), Ok((7, &b""[..])));
    }

    #[test]
    fn message_indexes_go_round_and_zero_stands_for_the_first_message() {
        assert_eq!(message_indexes(&[0, 9]), Ok((vec![0], &[9][..])));
        // Confluent writes [1, 2] as the count 2 and the indexes, zigzag: 04 02 04.
        let written = with_message_indexes(&[1, 2], b"m");
        assert_eq!(written, [4, 2, 4, b'm']);
        assert_eq!(message_indexes(&written), Ok((vec![1, 2], &b"m"[..])));
        assert_eq!(with_message_indexes(&[0], b"m"), [0, b'm']);
        // An explicit [0] reads as well.
        assert_eq!(message_indexes(&[2, 0, 7]), Ok((vec![0], &[7][..])));
        let deep = with_message_indexes(&[300, 5], b"");
        assert_eq!(message_indexes(&deep), Ok((vec![300, 5], &b""[..])));
    }

    #[test]
    fn hostile_message_indexes_are_refused() {
        assert_eq!(message_indexes(&[]), Err(FrameError::Indexes("cut short")));
        assert_eq!(
            message_indexes(&[4, 2]),
            Err(FrameError::Indexes("cut short"))
        );
        assert_eq!(
            message_indexes(&[0xfe, 0x7f]),
            Err(FrameError::Indexes("more than 64 deep"))
        );
        assert_eq!(
            message_indexes(&[0x80; 12]),
            Err(FrameError::Indexes("cut short"))
        );
    }

    #[test]
    fn values_that_are_not_framed_say_why() {
        assert_eq!(unframe(b""), Err(FrameError::Short(0)));
        assert_eq!(unframe(&[0, 0, 1]), Err(FrameError::Short(3)));
        assert_eq!(unframe(b"{\"a\":1}"), Err(FrameError::Magic(b'{')));
    }
}
