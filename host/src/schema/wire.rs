//! The schema registry's framing of a record value: magic byte 0, the writer schema's id
//! as four big-endian bytes, then the payload.

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
    fn values_that_are_not_framed_say_why() {
        assert_eq!(unframe(b""), Err(FrameError::Short(0)));
        assert_eq!(unframe(&[0, 0, 1]), Err(FrameError::Short(3)));
        assert_eq!(unframe(b"{\"a\":1}"), Err(FrameError::Magic(b'{')));
    }
}
