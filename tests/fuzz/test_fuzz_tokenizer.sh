#!/usr/bin/env bash
# Fuzz smoke for the tokenizer target (see fuzz_smoke.sh).
exec bash "$(dirname "$0")/fuzz_smoke.sh" tokenizer 4096
