//! JavaScript projects: the SDK module and its build script copied in, built with
//! componentize-js, which npm installs into the project's `node_modules`.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::{Manifest, TemplateFile, run, template};

const INSTALL: &str = "install Node.js 20+ with npm (https://nodejs.org)";

/// Names the weval binary `build.mjs` compiles ahead of time with.
const WEVAL_ENV: &str = "STREAMFN_WEVAL";

/// The template, and the SDK it builds against.
pub(super) const TEMPLATE: &[TemplateFile] = template![
    "function.js" => "sdk/js/template/function.js",
    "function.test.js" => "sdk/js/template/function.test.js",
    "package.json" => "sdk/js/template/package.json",
    "README.md" => "sdk/js/template/README.md",
    ".gitignore" => "sdk/js/template/.gitignore",
    "streamfn.js" => "sdk/js/streamfn.js",
    "build.mjs" => "sdk/js/build.mjs",
];

/// `npm install` when `node_modules` is missing, then the SDK's `build.mjs`, which
/// compiles ahead of time with `weval` when one is given.
pub(super) fn build(
    dir: &Path,
    manifest: &Manifest,
    contract: &str,
    out: &Path,
    weval: Option<&Path>,
    step: &dyn Fn(&str),
) -> Result<()> {
    if !dir
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        step("npm install (componentize-js)");
        run(
            dir,
            Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefer-offline"]),
            INSTALL,
        )?;
    }
    let mut command = Command::new("node");
    command
        .args(["build.mjs", "function.js"])
        .arg(out)
        .arg(manifest.contract_dir(dir, contract));
    match weval {
        Some(weval) => {
            step("componentize-js, ahead of time with weval");
            command.env(WEVAL_ENV, weval);
        }
        None => {
            step("componentize-js");
            command.env_remove(WEVAL_ENV);
        }
    }
    run(dir, &mut command, INSTALL)
}
