//! The wasmtime engine every function runs on: component model, pooling allocator, fuel,
//! and an epoch ticker for deadlines. Loads components (checking they fit the contract)
//! and creates instances. Does not decide what to run; the dispatcher does.

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{Function, FunctionPre, v0_2};
use super::cache::ComponentCache;
use super::instance::{Instance, InstanceConfig, InstanceState, Pre};
use crate::model::limits::MAX_MEMORY_MIB;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances alive at once across all functions of a replica, unless it says otherwise.
pub const MAX_INSTANCES: u32 = 1024;

/// The contract worlds, as error messages name them.
const WORLD: &str = "streamfn:function/function@0.2.0 or @0.1.0";

/// The settings of the engine that cost speed for safety or memory. The defaults are what
/// a replica runs with; the others exist to be measured (`benches/throughput.rs`).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Fuel metering: the per-event budget, and the fuel each call reports.
    pub fuel: bool,
    /// Epoch interruption: the wall-clock deadline of a call.
    pub epochs: bool,
    /// Cranelift's optimisation level.
    pub opt_level: wasmtime::OptLevel,
    /// The pooling allocator (instances in preallocated slots) rather than on demand.
    pub pooling: bool,
    /// Guard pages behind each memory, so bounds checks need no code.
    pub guard_pages: bool,
    /// Memories initialised from copy-on-write images.
    pub copy_on_write: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            fuel: true,
            epochs: true,
            opt_level: wasmtime::OptLevel::Speed,
            pooling: true,
            guard_pages: true,
            copy_on_write: true,
        }
    }
}

/// The shared engine of a replica.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<InstanceState>,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

/// A component checked against the contract and ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    pre: Pre,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The hex sha256 of `bytes`, the identity of a component.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Engine {
    /// An engine with its epoch ticker running, keeping precompiled components in
    /// `cache_dir` when one is given.
    pub fn new(cache_dir: Option<cap_std::fs::Dir>) -> Result<Arc<Engine>> {
        Engine::with_pool(cache_dir, MAX_INSTANCES)
    }

    /// An engine with room for `instances` live instances at once. A slot reserves
    /// address space (the largest memory a function may have, and its guard), not memory:
    /// what an instance touches is what it costs.
    pub fn with_pool(cache_dir: Option<cap_std::fs::Dir>, instances: u32) -> Result<Arc<Engine>> {
        Engine::tuned(cache_dir, instances, &Tuning::default())
    }

    /// An engine as [`Engine::with_pool`] makes, with `tuning` in place of the settings a
    /// replica runs with: for measuring what each costs.
    pub fn tuned(
        cache_dir: Option<cap_std::fs::Dir>,
        instances: u32,
        tuning: &Tuning,
    ) -> Result<Arc<Engine>> {
        anyhow::ensure!(
            instances > 0,
            "a replica needs room for at least one instance"
        );
        let max_memory = u64::from(MAX_MEMORY_MIB) << 20;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(tuning.fuel)
            .epoch_interruption(tuning.epochs)
            .cranelift_opt_level(tuning.opt_level)
            .memory_init_cow(tuning.copy_on_write);
        if !tuning.guard_pages {
            // Memories reserve only their largest size and no guard: every access is
            // checked by compiled code instead of by the MMU.
            config.memory_reservation(max_memory).memory_guard_size(0);
        }
        if tuning.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(instances)
                .total_core_instances(instances * 8)
                .total_memories(instances * 2)
                .total_tables(instances * 8)
                .total_stacks(instances)
                .max_core_instances_per_component(64)
                .max_memories_per_component(16)
                .max_tables_per_component(64)
                .max_memory_size(max_memory as usize);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("configuring wasmtime")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        Function::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking the Streamfn imports")?;
        v0_2::Function::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking the Streamfn 0.2.0 imports")?;
        let cache = cache_dir.map(|dir| ComponentCache::new(dir, compatibility_hash(&engine)));
        let ticker = EpochTicker::start(engine.clone());
        Ok(Arc::new(Engine {
            engine,
            linker,
            cache,
            _ticker: ticker,
        }))
    }

    /// Compiles (or loads from the cache) `bytes` and checks it is a component of the
    /// Streamfn world. The error says what is wrong in a user's terms.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent> {
        check_header(bytes)?;
        check_imports(bytes)?;
        let sha256 = sha256_hex(bytes);
        let component = self.compile(bytes, &sha256)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("the component does not fit the Streamfn contract (world {WORLD}): it needs an import the host does not give"))?;
        let pre = match v0_2::FunctionPre::new(pre.clone()) {
            Ok(pre) => Pre::V0_2(pre),
            Err(_) => FunctionPre::new(pre)
                .map(Pre::V0_1)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("the component does not fit the Streamfn contract (world {WORLD}): it does not export the handler of either version"))?,
        };
        Ok(LoadedComponent { sha256, pre })
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component> {
        if let Some(cache) = &self.cache {
            match cache.get(sha256) {
                Ok(Some(compiled)) => {
                    // SAFETY: the entry was written by `precompile_component` of an engine
                    // with the same compatibility hash (it is in the file name), in a
                    // directory only the host writes to, and its digest matched.
                    #[allow(unsafe_code)]
                    let loaded = unsafe { Component::deserialize(&self.engine, &compiled) };
                    match loaded {
                        Ok(component) => return Ok(component),
                        Err(err) => {
                            tracing::warn!(%sha256, "ignoring unusable cached component: {err}")
                        }
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(%sha256, "{err:#}; compiling the component again");
                    cache.remove(sha256);
                }
            }
        }
        let Some(cache) = &self.cache else {
            return Component::new(&self.engine, bytes)
                .map_err(anyhow::Error::from)
                .context("the file is not a valid WebAssembly component");
        };
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("the file is not a valid WebAssembly component")?;
        if let Err(err) = cache.put(sha256, &compiled) {
            tracing::warn!(%sha256, "could not cache the compiled component: {err:#}");
        }
        // SAFETY: `compiled` was produced by this engine just now.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(anyhow::Error::from)?;
        Ok(component)
    }

    /// A new instance of `component`.
    pub fn instantiate(
        &self,
        component: &LoadedComponent,
        config: InstanceConfig,
    ) -> Result<Instance> {
        let deadline = Engine::deadline_ticks(Duration::from_millis(config.limits.timeout_ms));
        Instance::new(&self.engine, &component.pre, config, deadline)
    }

    /// Epoch ticks that make up `timeout` (at least one).
    pub fn deadline_ticks(timeout: Duration) -> u64 {
        (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }
}

fn compatibility_hash(engine: &wasmtime::Engine) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Says plainly what a file is when it is not a component.
fn check_header(bytes: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        anyhow::bail!("the file is not WebAssembly (it does not start with the \\0asm header)");
    }
    // The layer field tells a core module (layer 0) from a component (layer 1).
    if bytes[6..8] == [0, 0] {
        anyhow::bail!(
            "the file is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

/// Interfaces the host gives components: WASI (sandboxed) and the Streamfn contract.
const GIVEN: [&str; 7] = [
    "wasi:io/",
    "wasi:clocks/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:random/",
    "wasi:sockets/",
    "streamfn:function/",
];

/// Refuses, before the long compile, a component that imports what the host does not
/// give, naming the import.
fn check_imports(bytes: &[u8]) -> Result<()> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.context("the file is not a valid WebAssembly component")?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 0 => {
                for import in imports {
                    let name = import.context("reading the component's imports")?.name.name;
                    if !GIVEN.iter().any(|given| name.starts_with(given)) {
                        anyhow::bail!(
                            "the component does not fit the Streamfn contract (world {WORLD}): it imports {name}, which the host does not give (functions get the contract's state, emit, effects, log, config and timers, and sandboxed WASI; for componentize-js, build with disableFeatures: ['http', 'fetch-event'])"
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Advances the engine's epoch every tick until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_components_are_named_for_what_they_are() {
        let engine = Engine::new(None).expect("engine");
        let err = engine.load(b"hello world, not wasm").expect_err("not wasm");
        assert!(format!("{err:#}").contains("not WebAssembly"), "{err:#}");
        let core_module = b"\0asm\x01\0\0\0";
        let err = engine.load(core_module).expect_err("core module");
        assert!(
            format!("{err:#}").contains("core WebAssembly module"),
            "{err:#}"
        );
        let broken_component = b"\0asm\x0d\0\x01\0garbage";
        let err = engine.load(broken_component).expect_err("broken");
        assert!(
            format!("{err:#}").contains("not a valid WebAssembly component"),
            "{err:#}"
        );
    }
}
