//! Wall-clock time, where the host needs it (deploy times, log lines, announcements).
//! Guests never see it: their time is the records' and the stream's.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
