//! Rust projects: the SDK crate copied in, built with cargo for wasm32-wasip2.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};

use super::{Manifest, TemplateFile, run, template};

/// The template, and the SDK it builds against.
pub(super) const TEMPLATE: &[TemplateFile] = template![
    "Cargo.toml" => "sdk/rust/template/Cargo.toml",
    "src/lib.rs" => "sdk/rust/template/src/lib.rs",
    "README.md" => "sdk/rust/template/README.md",
    ".gitignore" => "sdk/rust/template/.gitignore",
    ".streamfn/rust/Cargo.toml" => "sdk/rust/template/sdk.Cargo.toml",
    ".streamfn/rust/src/lib.rs" => "sdk/rust/src/lib.rs",
    ".streamfn/rust/src/blocks.rs" => "sdk/rust/src/blocks.rs",
    ".streamfn/rust/src/context.rs" => "sdk/rust/src/context.rs",
    ".streamfn/rust/src/event.rs" => "sdk/rust/src/event.rs",
    ".streamfn/rust/src/failure.rs" => "sdk/rust/src/failure.rs",
    ".streamfn/rust/src/testing.rs" => "sdk/rust/src/testing.rs",
    ".streamfn/rust/src/wasm/mod.rs" => "sdk/rust/src/wasm/mod.rs",
    ".streamfn/rust/src/wasm/v0_1.rs" => "sdk/rust/src/wasm/v0_1.rs",
    ".streamfn/rust/src/wasm/v0_2.rs" => "sdk/rust/src/wasm/v0_2.rs",
];

/// `cargo build --release --target wasm32-wasip2`, then the component to `out`.
pub(super) fn build(
    dir: &Path,
    manifest: &Manifest,
    contract: &str,
    out: &Path,
    step: &dyn Fn(&str),
) -> Result<()> {
    step("cargo build --release --target wasm32-wasip2");
    let mut cargo = Command::new("cargo");
    cargo.args(["build", "--release", "--target", "wasm32-wasip2"]);
    if contract == "0.1.0" {
        cargo.args(["--features", "streamfn/contract-0-1"]);
    }
    run(
        dir,
        &mut cargo,
        "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`",
    )?;
    // Cargo honours CARGO_TARGET_DIR, which lets projects share one build cache.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| dir.join(t))
        .unwrap_or_else(|| dir.join("target"));
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", manifest.name.replace('-', "_")));
    std::fs::copy(&built, out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    Ok(())
}
