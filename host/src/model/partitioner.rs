//! Picks a record's partition from its key the way Kafka's Java client does (murmur2),
//! so a key lands on the same partition number on the embedded log and on Kafka.

/// Kafka's murmur2 hash of `data`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a keyed record among `partitions`; `fallback` places a record
/// without a key (the producer's choice, so that it stays deterministic).
pub fn partition_for(key: Option<&[u8]>, partitions: u32, fallback: u32) -> u32 {
    match key {
        Some(key) => (murmur2(key) & 0x7fff_ffff) % partitions,
        None => fallback % partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values computed by org.apache.kafka.common.utils.Utils.murmur2.
    #[test]
    fn matches_the_java_client() {
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }

    #[test]
    fn keyless_records_follow_the_fallback() {
        assert_eq!(partition_for(None, 4, 6), 2);
        let p = partition_for(Some(b"customer-1"), 4, 0);
        assert_eq!(p, partition_for(Some(b"customer-1"), 4, 3));
        assert!(p < 4);
    }
}
