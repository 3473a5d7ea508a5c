//! The WASI a guest gets: no files, no environment, no network, clocks that stand still,
//! stderr kept only as a tail (for panic messages), and random numbers drawn from a
//! stream seeded by who draws them and where, so that a replay sees the same numbers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::ChaCha20Rng;
use sha2::{Digest as _, Sha256};
use wasmtime_wasi::WasiCtx;

/// The sandboxed WASI context of an instance writing to `stderr` and drawing from `random`.
pub(super) fn context(stderr: &StderrTail, random: &GuestRandom) -> WasiCtx {
    WasiCtx::builder()
        .stderr(stderr.clone())
        .wall_clock(StillClock)
        .monotonic_clock(StillClock)
        .secure_random(random.clone())
        .insecure_random(random.clone())
        .insecure_random_seed(random.insecure_seed())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// A seed made of `parts`, by a function that will not change: SHA-256 over each part
/// with its length.
pub fn seed(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"streamfn guest seed v1");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The random numbers of one instance: a ChaCha20 stream (whose output is fixed by its
/// specification, not by a library version) that the host seeds again at every call.
#[derive(Clone)]
pub(super) struct GuestRandom {
    stream: Arc<Mutex<ChaCha20Rng>>,
    initial: [u8; 32],
}

impl GuestRandom {
    pub(super) fn new(seed: [u8; 32]) -> Self {
        GuestRandom {
            stream: Arc::new(Mutex::new(ChaCha20Rng::from_seed(seed))),
            initial: seed,
        }
    }

    /// The seed `wasi:random/insecure-seed` gives: fixed for the instance.
    fn insecure_seed(&self) -> u128 {
        let mut half = [0u8; 16];
        half.copy_from_slice(&self.initial[..16]);
        u128::from_be_bytes(half)
    }

    /// Starts the stream again from `seed`.
    pub(super) fn reseed(&self, seed: [u8; 32]) {
        *self.lock() = ChaCha20Rng::from_seed(seed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChaCha20Rng> {
        self.stream.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl rand::TryRng for GuestRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.lock().try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.lock().try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.lock().try_fill_bytes(dst)
    }
}

/// A clock that stands still (the wall clock at the epoch): guests get time only from
/// events and stream time, so that a replay sees the same times.
pub(super) struct StillClock;

impl wasmtime_wasi::HostWallClock for StillClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StillClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    // Not zero: Go's runtime refuses to start on a monotonic clock that reads 0.
    fn now(&self) -> u64 {
        1
    }
}

/// The guest's stderr: keeps only the last few KiB (where a panic message is) and never
/// refuses a write, so a chatty guest cannot fail by logging.
#[derive(Clone, Default)]
pub(super) struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

const STDERR_TAIL: usize = 4096;

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        tail.extend(bytes);
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }

    pub(super) fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::p2::OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for StderrTail {
    async fn ready(&mut self) {}
}
