//! Python projects: the SDK package copied in, built with componentize-py, which the
//! SDK's builder installs into the project's own virtualenv.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::{Manifest, TemplateFile, run, template};

/// Shares one componentize-py virtualenv between projects when set.
const VENV_ENV: &str = "STREAMFN_PY_VENV";

/// The template, and the SDK it builds against.
pub(super) const TEMPLATE: &[TemplateFile] = template![
    "function.py" => "sdk/python/template/function.py",
    "test_function.py" => "sdk/python/template/test_function.py",
    "README.md" => "sdk/python/template/README.md",
    ".gitignore" => "sdk/python/template/.gitignore",
    "streamfn/__init__.py" => "sdk/python/streamfn/__init__.py",
    "streamfn/build.py" => "sdk/python/streamfn/build.py",
    "streamfn/codec.py" => "sdk/python/streamfn/codec.py",
    "streamfn/component.py" => "sdk/python/streamfn/component.py",
    "streamfn/context.py" => "sdk/python/streamfn/context.py",
    "streamfn/event.py" => "sdk/python/streamfn/event.py",
    "streamfn/failure.py" => "sdk/python/streamfn/failure.py",
    "streamfn/hosts.py" => "sdk/python/streamfn/hosts.py",
    "streamfn/testing.py" => "sdk/python/streamfn/testing.py",
    "streamfn/wire.py" => "sdk/python/streamfn/wire.py",
    "streamfn/py.typed" => "sdk/python/streamfn/py.typed",
];

/// `python3 -m streamfn.build`, the SDK's builder, with the component to `out`.
pub(super) fn build(
    dir: &Path,
    manifest: &Manifest,
    contract: &str,
    out: &Path,
    step: &dyn Fn(&str),
) -> Result<()> {
    let mut command = Command::new("python3");
    command
        .args(["-m", "streamfn.build", ".", "-o"])
        .arg(out)
        .arg("--wit")
        .arg(manifest.contract_dir(dir, contract));
    if let Some(venv) = std::env::var_os(VENV_ENV) {
        command.arg("--venv").arg(venv);
    }
    step("componentize-py (the first build installs it into .venv)");
    run(
        dir,
        &mut command,
        "install Python 3.10+ with its venv module (on Debian: apt-get install python3-venv)",
    )
}
