//! Function projects on the user's machine: `fnctl new` writes one from a language's
//! template (the SDK and the contract copied in, so the project builds on its own), and
//! `fnctl build` turns it into a component with that language's toolchain. Nothing is
//! installed outside the project.

mod go;
mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// The versions of the contract a project may build against, each in `wit/VERSION/`,
/// oldest first; a build targets the newest unless told otherwise.
const CONTRACTS: [(&str, &str); 2] = [
    ("0.1.0", include_str!("../../wit/0.1.0/function.wit")),
    ("0.2.0", include_str!("../../wit/0.2.0/function.wit")),
];

/// What `fnctl new` writes and `fnctl build` reads, at a project's root.
pub const MANIFEST: &str = "streamfn.toml";

/// A language functions can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, built for wasm32-wasip2 with cargo.
    Rust,
    /// JavaScript, built with componentize-js (npm).
    Js,
    /// Python, built with componentize-py (PyPI).
    Python,
    /// Go 1.25+, built for wasip1 and made a component by fnctl.
    Go,
}

/// `streamfn.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Project name: the component is `NAME.wasm`.
    pub name: String,
    /// The language of the function.
    pub lang: Lang,
    /// The contract's directory, relative to the project [default: `wit`, where
    /// `fnctl new` puts it].
    pub wit: Option<String>,
    /// The contract version to build against [default: the newest, 0.2.0].
    pub contract: Option<String>,
}

impl Manifest {
    /// The directory holding the contract of the project in `dir`.
    pub fn wit_dir(&self, dir: &Path) -> PathBuf {
        dir.join(self.wit.as_deref().unwrap_or("wit"))
    }

    /// The directory holding version `version` of the contract: `wit/VERSION/`, or the
    /// contract directory itself in a project that holds one version only there.
    pub fn contract_dir(&self, dir: &Path, version: &str) -> PathBuf {
        let wit = self.wit_dir(dir);
        let versioned = wit.join(version);
        if versioned.is_dir() { versioned } else { wit }
    }
}

/// A file of a template, relative to the project root.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

/// Template files: `"path in the project" => "path in the repository"`, embedded.
macro_rules! template {
    ($($path:literal => $source:literal),* $(,)?) => {
        &[$(super::TemplateFile {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $source)),
        }),*]
    };
}
use template;

/// Writes a new project for `lang` in `dir` (which must not exist or be empty).
pub fn create(dir: &Path, name: &str, lang: Lang) -> Result<()> {
    validate_name(name)?;
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let files = match lang {
        Lang::Rust => rust::TEMPLATE,
        Lang::Js => js::TEMPLATE,
        Lang::Python => python::TEMPLATE,
        Lang::Go => go::TEMPLATE,
    };
    for (version, text) in CONTRACTS {
        write(dir, &format!("wit/{version}/function.wit"), text)?;
    }
    for file in files {
        write(dir, file.path, &file.text.replace("{{name}}", name))?;
    }
    let manifest = toml_text(&Manifest {
        name: name.to_owned(),
        lang,
        wit: None,
        contract: None,
    });
    write(dir, MANIFEST, &manifest)
}

/// Checks a project name: it names the function, its component file and, in Rust and Go,
/// its package, so it keeps to what every toolchain accepts.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !valid {
        bail!(
            "invalid project name {name:?}: start with a letter, then up to 63 letters, digits, - or _"
        );
    }
    Ok(())
}

fn toml_text(manifest: &Manifest) -> String {
    let lang = match manifest.lang {
        Lang::Rust => "rust",
        Lang::Js => "js",
        Lang::Python => "python",
        Lang::Go => "go",
    };
    format!(
        "# A Streamfn function project: `fnctl build` builds {0}.wasm.\nname = \"{0}\"\nlang = \"{lang}\"\n",
        manifest.name
    )
}

fn write(dir: &Path, relative: &str, text: &str) -> Result<()> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads the manifest of the project in `dir`.
pub fn manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no {MANIFEST}: run fnctl build inside a project made by `fnctl new NAME --lang LANG`",
            dir.display()
        )
    })?;
    parse_manifest(&text).with_context(|| format!("reading {}", path.display()))
}

/// The keys of `streamfn.toml`, without a TOML library for three lines.
fn parse_manifest(text: &str) -> Result<Manifest> {
    let mut name = None;
    let mut lang = None;
    let mut wit = None;
    let mut contract = None;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some((key, value)) = line.split_once('=') else {
            bail!("expected `key = \"value\"`, got {line:?}");
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim() {
            "name" => name = Some(value),
            "lang" => {
                lang = Some(match value.as_str() {
                    "rust" => Lang::Rust,
                    "js" => Lang::Js,
                    "python" => Lang::Python,
                    "go" => Lang::Go,
                    other => bail!("unknown lang {other:?}: use rust, js, python or go"),
                })
            }
            "wit" => wit = Some(value),
            "contract" => contract = Some(value),
            other => bail!("unknown key {other:?}: expected name, lang, wit or contract"),
        }
    }
    Ok(Manifest {
        name: name.context("no `name`")?,
        lang: lang.context("no `lang`")?,
        wit,
        contract,
    })
}

/// How to build a project, beyond its manifest.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where to write the component [default: `NAME.wasm` in the project].
    pub out: Option<PathBuf>,
    /// A weval binary: compile a JavaScript function ahead of time with it.
    pub weval: Option<PathBuf>,
    /// The contract version to build against [default: the manifest's, else the newest].
    pub contract: Option<String>,
}

/// The contract version `asked` for (the newest when none is), if Streamfn has it.
fn contract_version(asked: Option<&str>) -> Result<&'static str> {
    let newest = CONTRACTS[CONTRACTS.len() - 1].0;
    let Some(asked) = asked else {
        return Ok(newest);
    };
    match CONTRACTS.iter().find(|(version, _)| *version == asked) {
        Some((version, _)) => Ok(version),
        None => {
            let known: Vec<&str> = CONTRACTS.iter().map(|(version, _)| *version).collect();
            bail!(
                "unknown contract version {asked:?}: use one of {}",
                known.join(", ")
            )
        }
    }
}

/// Builds the project in `dir`; returns the component's path. `step` reports progress.
pub fn build(dir: &Path, options: &BuildOptions, step: &dyn Fn(&str)) -> Result<PathBuf> {
    // Toolchains run inside the project, so every path handed to them is absolute.
    let dir = &std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let manifest = manifest(dir)?;
    let contract = contract_version(options.contract.as_deref().or(manifest.contract.as_deref()))?;
    if options.weval.is_some() && manifest.lang != Lang::Js {
        bail!("ahead-of-time compilation with weval is for JavaScript functions only");
    }
    let out = match options.out.as_deref() {
        Some(out) => std::path::absolute(out).with_context(|| format!("{}", out.display()))?,
        None => std::path::absolute(dir.join(format!("{}.wasm", manifest.name)))?,
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match manifest.lang {
        Lang::Rust => rust::build(dir, &manifest, contract, &out, step)?,
        Lang::Js => js::build(
            dir,
            &manifest,
            contract,
            &out,
            options.weval.as_deref(),
            step,
        )?,
        Lang::Python => python::build(dir, &manifest, contract, &out, step)?,
        Lang::Go => go::build(dir, &manifest, contract, &out, step)?,
    }
    Ok(out)
}

/// Runs a toolchain command in `dir`, saying what to install when its program is
/// missing and showing its output when it fails.
fn run(dir: &Path, command: &mut Command, install: &str) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .current_dir(dir)
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("{program} is not installed: {install}")
            }
            _ => anyhow::anyhow!("cannot run {program}: {err}"),
        })?;
    if !output.status.success() {
        let mut shown = String::from_utf8_lossy(&output.stderr).into_owned();
        if shown.trim().is_empty() {
            shown = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let tail: Vec<&str> = shown.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{program} failed ({}):\n{}", output.status, tail.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_bad_ones_are_named() {
        let text = toml_text(&Manifest {
            name: "f".into(),
            lang: Lang::Python,
            wit: None,
            contract: None,
        });
        let back = parse_manifest(&text).expect("parses");
        assert_eq!((back.name.as_str(), back.lang), ("f", Lang::Python));
        assert_eq!(back.wit_dir(Path::new("p")), Path::new("p/wit"));
        let elsewhere =
            parse_manifest("name = \"f\"\nlang = \"go\"\nwit = \"../../wit\"").expect("parses");
        assert_eq!(elsewhere.wit_dir(Path::new("p")), Path::new("p/../../wit"));
        let err = parse_manifest("name = \"f\"\nlang = \"cobol\"").expect_err("unknown lang");
        assert!(err.to_string().contains("cobol"), "{err}");
        let pinned =
            parse_manifest("name = \"f\"\nlang = \"go\"\ncontract = \"0.1.0\"").expect("parses");
        assert_eq!(pinned.contract.as_deref(), Some("0.1.0"));
    }

    #[test]
    fn builds_target_the_newest_contract_unless_told_and_unknown_ones_are_refused() {
        assert_eq!(contract_version(None).expect("newest"), "0.2.0");
        assert_eq!(contract_version(Some("0.1.0")).expect("known"), "0.1.0");
        let err = contract_version(Some("0.3.0")).expect_err("unknown");
        assert!(err.to_string().contains("use one of 0.1.0, 0.2.0"), "{err}");
    }

    #[test]
    fn project_names_fit_every_toolchain() {
        for good in ["payments", "fraud-scorer", "f_1"] {
            validate_name(good).expect(good);
        }
        for bad in ["", "1st", "a.b", "has space", &"x".repeat(65)] {
            let err = validate_name(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid project name"), "{err}");
        }
    }

    #[test]
    fn a_new_project_refuses_a_directory_in_use() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("x"), "x").expect("write");
        let err = create(dir.path(), "f", Lang::Rust).expect_err("not empty");
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
