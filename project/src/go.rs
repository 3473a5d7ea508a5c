//! Go projects: the SDK module copied in, its WIT bindings generated in-process, the
//! function built by `go build` as a wasip1 reactor, and that core module made a
//! component in-process with wasmtime's preview1 adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use wit_bindgen_core::wit_parser::{Resolve, WorldId};

use super::{Manifest, TemplateFile, run, template};

const INSTALL: &str = "install Go 1.25 or later from https://go.dev/dl";

/// The module path of the SDK, which projects replace with their copy.
const SDK_MODULE: &str = "streamfn.dev/streamfn";

/// The Go package the generated bindings form, inside the SDK module.
const BINDINGS_PACKAGE: &str = "streamfn.dev/streamfn/internal/wit";

/// The directories of generated bindings, under the SDK's `internal/wit`: written afresh
/// by every build, so none of another contract version's are left.
const GENERATED: [&str; 2] = ["imports", "exports/wit_exports"];

/// The build tag that selects the SDK's glue for contract 0.1.0 (0.2.0 without it).
const CONTRACT_0_1_TAG: &str = "streamfn_contract_0_1";

/// The template, the SDK and the component-model runtime its bindings use.
pub(super) const TEMPLATE: &[TemplateFile] = template![
    "go.mod" => "sdk/go/template/go.mod",
    "function.go" => "sdk/go/template/function.go",
    "function_test.go" => "sdk/go/template/function_test.go",
    "README.md" => "sdk/go/template/README.md",
    ".gitignore" => "sdk/go/template/.gitignore",
    ".streamfn/go/go.mod" => "sdk/go/streamfn/go.mod",
    ".streamfn/go/context.go" => "sdk/go/streamfn/context.go",
    ".streamfn/go/doc.go" => "sdk/go/streamfn/doc.go",
    ".streamfn/go/event.go" => "sdk/go/streamfn/event.go",
    ".streamfn/go/export.go" => "sdk/go/streamfn/export.go",
    ".streamfn/go/failure.go" => "sdk/go/streamfn/failure.go",
    ".streamfn/go/wasm.go" => "sdk/go/streamfn/wasm.go",
    ".streamfn/go/wasm_v0_1.go" => "sdk/go/streamfn/wasm_v0_1.go",
    ".streamfn/go/wasm_v0_2.go" => "sdk/go/streamfn/wasm_v0_2.go",
    ".streamfn/go/wire.go" => "sdk/go/streamfn/wire.go",
    ".streamfn/go/batchhost.go" => "sdk/go/streamfn/batchhost.go",
    ".streamfn/go/streamfntest/host.go" => "sdk/go/streamfn/streamfntest/host.go",
    ".streamfn/go/internal/wit/exports/export_streamfn_function_handler/handler_v0_1.go" =>
        "sdk/go/streamfn/internal/wit/exports/export_streamfn_function_handler/handler_v0_1.go",
    ".streamfn/go/internal/wit/exports/export_streamfn_function_handler/handler_v0_2.go" =>
        "sdk/go/streamfn/internal/wit/exports/export_streamfn_function_handler/handler_v0_2.go",
    ".streamfn/go/witpkg/LICENSE" => "sdk/go/streamfn/witpkg/LICENSE",
    ".streamfn/go/witpkg/README.md" => "sdk/go/streamfn/witpkg/README.md",
    ".streamfn/go/witpkg/go.mod" => "sdk/go/streamfn/witpkg/go.mod",
    ".streamfn/go/witpkg/wit/async/async.go" => "sdk/go/streamfn/witpkg/wit/async/async.go",
    ".streamfn/go/witpkg/wit/async/empty.s" => "sdk/go/streamfn/witpkg/wit/async/empty.s",
    ".streamfn/go/witpkg/wit/runtime/empty.s" => "sdk/go/streamfn/witpkg/wit/runtime/empty.s",
    ".streamfn/go/witpkg/wit/runtime/runtime.go" => "sdk/go/streamfn/witpkg/wit/runtime/runtime.go",
    ".streamfn/go/witpkg/wit/types/future.go" => "sdk/go/streamfn/witpkg/wit/types/future.go",
    ".streamfn/go/witpkg/wit/types/option.go" => "sdk/go/streamfn/witpkg/wit/types/option.go",
    ".streamfn/go/witpkg/wit/types/result.go" => "sdk/go/streamfn/witpkg/wit/types/result.go",
    ".streamfn/go/witpkg/wit/types/stream.go" => "sdk/go/streamfn/witpkg/wit/types/stream.go",
    ".streamfn/go/witpkg/wit/types/tuple.go" => "sdk/go/streamfn/witpkg/wit/types/tuple.go",
    ".streamfn/go/witpkg/wit/types/unit.go" => "sdk/go/streamfn/witpkg/wit/types/unit.go",
];

/// Bindings into the SDK the project's `go.mod` names, `go build`, then the component.
pub(super) fn build(
    dir: &Path,
    manifest: &Manifest,
    contract: &str,
    out: &Path,
    step: &dyn Fn(&str),
) -> Result<()> {
    check_version(dir)?;
    let (mut resolve, world) = read_contract(&manifest.contract_dir(dir, contract))?;

    step("wit-bindgen go");
    let sdk = sdk_dir(dir)?;
    for generated in GENERATED {
        let path = sdk.join("internal/wit").join(generated);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    generate_bindings(&mut resolve, world, &sdk.join("internal/wit"))?;

    step("go build (GOOS=wasip1 GOARCH=wasm)");
    let build_dir = dir.join(".streamfn/build");
    std::fs::create_dir_all(&build_dir)
        .with_context(|| format!("creating {}", build_dir.display()))?;
    let core_path = build_dir.join("core.wasm");
    let mut build = go(dir);
    build.env("GOOS", "wasip1").env("GOARCH", "wasm").args([
        "build",
        "-buildmode=c-shared",
        "-trimpath",
        "-ldflags=-checklinkname=0",
    ]);
    if contract == "0.1.0" {
        build.args(["-tags", CONTRACT_0_1_TAG]);
    }
    run(dir, build.arg("-o").arg(&core_path).arg("."), INSTALL)?;

    step("component (wasi preview1 adapter)");
    let mut core =
        std::fs::read(&core_path).with_context(|| format!("reading {}", core_path.display()))?;
    wit_component::embed_component_metadata(
        &mut core,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .context("embedding the contract in the core module")?;
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&core)
        .context("reading the core module go build wrote")?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("loading the WASI preview1 adapter")?
        .encode()
        .context("making a component of the core module")?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}

/// `go` run offline with the toolchain found here: the SDK and its runtime are local
/// replaces, and neither a `go.work` elsewhere nor a toolchain line may change the build.
fn go(dir: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .current_dir(dir)
        .env("GOWORK", "off")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=readonly");
    command
}

/// The stdout of a `go` command that must succeed.
fn go_output(dir: &Path, args: &[&str]) -> Result<String> {
    let output = go(dir)
        .args(args)
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("go is not installed: {INSTALL}"),
            _ => anyhow::anyhow!("cannot run go: {err}"),
        })?;
    if !output.status.success() {
        bail!(
            "go {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Go 1.25 or later: the SDK's module declares it.
fn check_version(dir: &Path) -> Result<()> {
    let version = go_output(dir, &["env", "GOVERSION"])?;
    let minor = version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|minor| minor.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= 25 => Ok(()),
        _ => bail!("{version} is too old: {INSTALL}"),
    }
}

/// The directory of the SDK module the project builds against (its copy in a project
/// made by `fnctl new`, or wherever its `go.mod` points).
fn sdk_dir(dir: &Path) -> Result<PathBuf> {
    let sdk = go_output(dir, &["list", "-m", "-f", "{{.Dir}}", SDK_MODULE]).with_context(|| {
        format!("the project's go.mod must require {SDK_MODULE} and replace it with a local copy")
    })?;
    Ok(PathBuf::from(sdk))
}

/// The contract in `wit` and its `function` world.
fn read_contract(wit: &Path) -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .with_context(|| format!("reading the contract in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some("function"))?;
    Ok((resolve, world))
}

/// Writes the Go bindings of `world` under `out`, with their `runtime` import pointed at
/// the SDK's runtime package: the generated code uses `runtime` only for its `Pinner`,
/// which the SDK's replaces at a fraction of the fuel (sdk/go/streamfn/witpkg/README.md).
/// Should the generator use more of `runtime`, `go build` fails rather than build
/// something wrong.
fn generate_bindings(resolve: &mut Resolve, world: WorldId, out: &Path) -> Result<()> {
    let options = wit_bindgen_go::Opts {
        pkg_name: Some(BINDINGS_PACKAGE.to_owned()),
        format: wit_bindgen_go::Format::False,
        quiet: true,
        ..Default::default()
    };
    let mut files = wit_bindgen_core::Files::default();
    options
        .build()
        .generate(resolve, world, &mut files)
        .context("generating the Go bindings")?;
    for (name, bytes) in files.iter() {
        let text = String::from_utf8_lossy(bytes);
        let text = if name.ends_with(".go") {
            text.lines()
                .map(|line| match line.trim() {
                    "\"runtime\"" => line.replace(
                        "\"runtime\"",
                        "runtime \"go.bytecodealliance.org/pkg/wit/runtime\"",
                    ),
                    _ => line.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        } else {
            text.into_owned()
        };
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
