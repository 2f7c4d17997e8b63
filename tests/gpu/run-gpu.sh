#!/usr/bin/env bash
# `make test-gpu`: the CUDA tests with a GPU required, then the kernel
# benchmarks (and, with EC_BENCH_MODEL=1, the Qwen3-30B-A3B-shaped model
# benchmark, which writes a ~17 GB GGUF to $EC_BENCH_DIR, default /tmp).
# Logs go to $OUT when set (the device tool), else build/gpu-logs.
set -u
cd "$(dirname "$0")/../.."
logs=${OUT:-build/gpu-logs}
mkdir -p "$logs"
export EC_REQUIRE_GPU=1 EC_GPU_TEST_BIN=build/tests/gpu
export EC_CUDA_LIB=${EC_CUDA_LIB:-$PWD/build/libexpertcache_cuda.so}
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	nvidia-smi --query-gpu=name,driver_version,memory.total \
		--format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
} | tee "$logs/device.txt"
rc=0
# The emulation's self-test built by nvcc: what kernels/emu promises to
# behave like must hold on the real GPU too.
if [ -x build/cuda/emu_selftest ]; then
	build/cuda/emu_selftest 2>&1 | tee "$logs/emu-selftest-on-gpu.log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
fi
bash tests/gpu/test_cuda.sh 2>&1 | tee "$logs/test-gpu.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
build/tests/gpu/bench_cuda_kernels 2>&1 | tee "$logs/bench-kernels.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
if [ "${EC_BENCH_MODEL:-0}" = 1 ]; then
	timeout "${EC_BENCH_TIMEOUT:-900}" build/tests/gpu/bench_model \
		"${EC_BENCH_DIR:-/tmp}/ec-qwen3-30b-a3b.gguf" \
		2>&1 | tee "$logs/bench-model.md"
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
fi
exit $rc
