#!/usr/bin/env bash
# Fuzz smoke for the gguf target (see fuzz_smoke.sh).
exec bash "$(dirname "$0")/fuzz_smoke.sh" gguf 16384
