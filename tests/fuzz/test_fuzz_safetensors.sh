#!/usr/bin/env bash
# Fuzz smoke for the safetensors target (see fuzz_smoke.sh).
exec bash "$(dirname "$0")/fuzz_smoke.sh" safetensors 4096 -dict=tests/fuzz/safetensors.dict
