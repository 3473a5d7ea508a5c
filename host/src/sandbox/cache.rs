//! Precompiled components on disk, keyed by the component's sha256 and the engine's
//! compatibility hash, so a restart or a redeploy of a known component skips compiling.

use anyhow::{Context as _, Result};
use cap_std::fs::Dir;

/// A directory of precompiled components.
pub struct ComponentCache {
    dir: Dir,
    engine_hash: String,
}

impl ComponentCache {
    /// A cache in `dir` for components compiled by an engine with `engine_hash`.
    pub fn new(dir: Dir, engine_hash: String) -> Self {
        ComponentCache { dir, engine_hash }
    }

    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.engine_hash)
    }

    /// The precompiled bytes of the component with `sha256`, if cached.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        self.dir.read(self.file_name(sha256)).ok()
    }

    /// Stores precompiled bytes; a reader never sees a half-written file.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let name = self.file_name(sha256);
        let partial = format!("{name}.partial");
        self.dir
            .write(&partial, bytes)
            .with_context(|| format!("writing {partial} in the component cache"))?;
        self.dir
            .rename(&partial, &self.dir, &name)
            .with_context(|| format!("renaming {partial} in the component cache"))
    }
}
