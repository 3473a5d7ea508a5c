#!/usr/bin/env bash
# Builds a Python function project into a Streamfn component:
#   sdk/python/build.sh PROJECT_DIR [WIT_DIR] [OUT.wasm]
# WIT_DIR defaults to PROJECT_DIR/wit, OUT to PROJECT_DIR/NAME.wasm. componentize-py is
# installed into PROJECT_DIR/.venv (or $STREAMFN_PY_VENV) on first use, nowhere else.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 3 || $1 == -h || $1 == --help ]]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
args=("$1")
[[ $# -ge 2 ]] && args+=(--wit "$2")
[[ $# -ge 3 ]] && args+=(-o "$3")
[[ -n ${STREAMFN_PY_VENV:-} ]] && args+=(--venv "$STREAMFN_PY_VENV")
exec python3 "$(dirname "$0")/streamfn/build.py" "${args[@]}"
