"""Builds a Streamfn function project into a component with componentize-py.

    python3 -m streamfn.build [PROJECT] [--wit DIR] [-o OUT.wasm] [--venv DIR]

PROJECT (default `.`) holds `function.py`; the contract is PROJECT/wit/0.2.0 (or
PROJECT/wit when the project holds one version there) unless `--wit` says; the component is PROJECT/NAME.wasm, NAME from `streamfn.toml` (or the directory's
name). componentize-py 0.25.1 is installed into PROJECT/.venv on first use: only there,
never into the Python that runs this. Plain standard library, so it runs before any
install, and it is never part of a component.
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

COMPONENTIZE_PY = "componentize-py==0.25.1"
NEWEST_CONTRACT = "0.2.0"
# The SDK this file belongs to: its parent is put on the component's Python path after
# the project, so a function in a repository builds against the SDK beside it while a
# project made by `fnctl new` uses its own copy.
SDK_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m streamfn.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("project", nargs="?", default=".", type=Path, help="project directory [default: .]")
    parser.add_argument("--wit", type=Path, help="the contract's WIT directory [default: PROJECT/wit/0.2.0]")
    parser.add_argument("-o", "--out", type=Path, help="component to write [default: PROJECT/NAME.wasm]")
    parser.add_argument("--venv", type=Path, help="virtualenv for componentize-py [default: PROJECT/.venv]")
    args = parser.parse_args(argv)
    try:
        out = build(args.project, args.wit, args.out, args.venv)
    except BuildError as err:
        print(f"streamfn build: {err}", file=sys.stderr)
        return 1
    print(f"built {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


class BuildError(Exception):
    """A build that cannot go on, with what to do about it."""


def build(project: Path, wit: Path | None = None, out: Path | None = None, venv: Path | None = None) -> Path:
    """Builds `project` into a component; returns its path."""
    project = project.resolve()
    wit = (wit or default_contract(project)).resolve()
    out = (out or project / f"{project_name(project)}.wasm").resolve()
    venv = (venv or project / ".venv").resolve()
    if not (project / "function.py").is_file() and not (project / "function" / "__init__.py").is_file():
        raise BuildError(f"{project} has no function.py: the function is `handle(event, ctx)` in function.py")
    if not wit.is_dir():
        raise BuildError(f"{wit} is not a directory: pass the contract's WIT directory with --wit")
    componentize = ensure_componentize_py(venv)
    python_path = ["-p", str(project)]
    if SDK_ROOT != project:
        python_path += ["-p", str(SDK_ROOT)]
    command = [str(componentize), "-d", str(wit), "-w", "function", "componentize", *python_path,
               "streamfn.component", "-o", str(out)]
    step(f"componentize-py: {project.name} -> {out.name}")
    started = time.monotonic()
    result = subprocess.run(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        # What went wrong in the user's code comes first; componentize-py's own stack
        # trace after it says nothing about the function.
        shown = result.stdout.split("\nStack backtrace:")[0].rstrip()
        raise BuildError(f"componentize-py failed ({result.returncode}):\n{shown}")
    step(f"componentize-py took {time.monotonic() - started:.1f} s")
    return out


def default_contract(project: Path) -> Path:
    """The newest contract version the project holds."""
    newest = project / "wit" / NEWEST_CONTRACT
    return newest if newest.is_dir() else project / "wit"


def ensure_componentize_py(venv: Path) -> Path:
    """The componentize-py of `venv`, creating the venv and installing it when missing."""
    binary = venv / "bin" / "componentize-py"
    if binary.exists():
        return binary
    step(f"installing {COMPONENTIZE_PY} into {venv}")
    for command in ([sys.executable, "-m", "venv", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", COMPONENTIZE_PY]):
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise BuildError(
                f"{' '.join(command[:4])} failed:\n{result.stdout.rstrip()}\n"
                "(creating a venv needs Python's venv module: on Debian, apt-get install python3-venv)"
            )
    return binary


def project_name(project: Path) -> str:
    """NAME from the project's `streamfn.toml`, or the directory's name."""
    manifest = project / "streamfn.toml"
    if manifest.is_file():
        found = re.search(r'^\s*name\s*=\s*"([^"]+)"', manifest.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    return project.name


def step(message: str) -> None:
    """Progress, on stderr so that stdout stays the result."""
    print(f"streamfn build: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
