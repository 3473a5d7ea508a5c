//! Precompiled components on disk, keyed by the component's sha256 and the engine's
//! compatibility hash, so a restart or a redeploy of a known component skips compiling.
//! Each entry starts with the sha256 of what follows, checked before the engine loads
//! it: loading machine code is trusted, so a damaged entry must never reach it.

use anyhow::{Context as _, Result, bail};
use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};

/// A directory of precompiled components.
pub struct ComponentCache {
    dir: Dir,
    engine_hash: String,
}

/// Bytes of the digest in front of an entry.
const DIGEST: usize = 32;

impl ComponentCache {
    /// A cache in `dir` for components compiled by an engine with `engine_hash`.
    pub fn new(dir: Dir, engine_hash: String) -> Self {
        ComponentCache { dir, engine_hash }
    }

    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.engine_hash)
    }

    /// The precompiled bytes of the component with `sha256`, if cached; an error when the
    /// entry is damaged.
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let Ok(mut entry) = self.dir.read(self.file_name(sha256)) else {
            return Ok(None);
        };
        if entry.len() < DIGEST || Sha256::digest(&entry[DIGEST..])[..] != entry[..DIGEST] {
            bail!("the cached compilation of {sha256} is damaged");
        }
        entry.drain(..DIGEST);
        Ok(Some(entry))
    }

    /// Stores precompiled bytes; a reader never sees a half-written file.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let name = self.file_name(sha256);
        let partial = format!("{name}.partial");
        let mut entry = Sha256::digest(bytes).to_vec();
        entry.extend_from_slice(bytes);
        self.dir
            .write(&partial, &entry)
            .with_context(|| format!("writing {partial} in the component cache"))?;
        self.dir
            .rename(&partial, &self.dir, &name)
            .with_context(|| format!("renaming {partial} in the component cache"))
    }

    /// Forgets the entry of `sha256`.
    pub fn remove(&self, sha256: &str) {
        let _ = self.dir.remove_file(self.file_name(sha256));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_entry_is_refused_and_an_intact_one_read_back() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Dir::open_ambient_dir(temp.path(), cap_std::ambient_authority()).expect("dir");
        let cache = ComponentCache::new(dir.try_clone().expect("dir"), "e1".into());
        assert_eq!(cache.get("abc").expect("absent"), None);
        cache.put("abc", b"machine code").expect("put");
        assert_eq!(
            cache.get("abc").expect("intact"),
            Some(b"machine code".to_vec())
        );
        let name = "abc-e1.cwasm";
        let mut bytes = dir.read(name).expect("entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        dir.write(name, &bytes).expect("damage");
        let err = cache.get("abc").expect_err("damaged");
        assert!(err.to_string().contains("damaged"), "{err}");
        cache.remove("abc");
        assert_eq!(cache.get("abc").expect("gone"), None);
    }
}
