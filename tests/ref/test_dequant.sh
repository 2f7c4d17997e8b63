#!/usr/bin/env bash
# Dequantisation (Q8_0, Q4_K, Q6_K, F16, BF16) against gguf-py, bit for bit.
set -u
cd "$(dirname "$0")/../.."
py=build/venv/bin/python
if [ ! -x "$py" ] || ! "$py" -c 'import gguf, numpy' 2>/dev/null; then
	echo "SKIP: no reference venv with gguf at $py (make venv)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
tool=build/san/tests/tools/dequant_dump
[ -x "$tool" ] || tool=build/tests/tools/dequant_dump
if [ ! -x "$tool" ]; then
	echo "dequant_dump not built (make all)"
	echo "0 passed, 1 failed"
	exit 1
fi
exec "$py" tests/ref/dequant_ref.py "$tool"
