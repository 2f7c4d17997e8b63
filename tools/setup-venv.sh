#!/usr/bin/env bash
# Creates the reference Python environment under build/venv (torch, transformers,
# gguf, tokenizers, ...).  Used only by reference checks, fixture generation and
# benchmarks -- never by the engine.  Re-runs only when requirements change.
set -eu
cd "$(dirname "$0")/.."
req=tools/requirements.txt
venv=build/venv
stamp=$venv/.stamp
if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
	exit 0
fi
echo "setting up the reference venv in $venv (first time takes a few minutes)"
mkdir -p build
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -r "$req"
cp "$req" "$stamp"
