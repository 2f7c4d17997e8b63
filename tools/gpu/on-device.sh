#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, after tools/gpu/pack.sh
# here and with .carry/gpu carried there.  One stage per call (each fits
# the device tool's 10-minute limit):
#   tests         make test-gpu's checks (every kernel against its CPU
#                 reference, whole models GPU vs CPU) + kernel benchmarks
#   bench-model   the Qwen3-30B-A3B-shaped model at 100/50/25/10% VRAM
#   vs-llama      expertcache vs llama.cpp (tools/bench/bench_gpu_vs_llamacpp.py)
# Logs and results go to $OUT (the device tool brings them back).
set -u
cd "$(dirname "$0")/../.."
stage=${1:?usage: on-device.sh tests|bench-model|vs-llama}
: "${OUT:=build/gpu-logs}"
mkdir -p "$OUT"
if [ ! -x build/expertcache ] || [ .carry/gpu/ours.tar.xz -nt build/expertcache ]; then
	tar xJf .carry/gpu/ours.tar.xz -C . --exclude=lib
	mkdir -p build/gpu-lib && tar xJf .carry/gpu/ours.tar.xz -C build/gpu-lib lib
fi
export LD_LIBRARY_PATH=$PWD/build/gpu-lib/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# llama.cpp's CUDA backend links the CUDA runtime, cuBLAS and NCCL
# dynamically: take them wherever this image keeps them (toolkit or wheels).
cuda_lib_dirs() {
	local l d
	for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
		ldconfig -p | grep -q "$l" && continue
		d=$(find /usr/local /opt /usr/lib -name "$l" -print -quit 2>/dev/null)
		[ -n "$d" ] && printf ':%s' "$(dirname "$d")"
	done
}
export EC_BENCH_DIR=${EC_BENCH_DIR:-/tmp}
case $stage in
tests)
	bash tests/gpu/run-gpu.sh
	;;
bench-model)
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader |
		tee "$OUT/device.txt"
	build/tests/gpu/bench_model "$EC_BENCH_DIR/ec-qwen3-30b-a3b.gguf" 2>&1 |
		tee "$OUT/bench-model.md"
	;;
vs-llama)
	if [ ! -x build/llama-cuda/bin/llama-bench ]; then
		mkdir -p build/llama-cuda
		tar xJf .carry/gpu/llama-cuda.tar.xz -C build/llama-cuda
	fi
	LD_LIBRARY_PATH=$LD_LIBRARY_PATH$(cuda_lib_dirs) \
		python3 tools/bench/bench_gpu_vs_llamacpp.py \
		--llama-bin build/llama-cuda/bin 2>&1 | tee "$OUT/vs-llama.md"
	;;
*)
	echo "unknown stage $stage" >&2
	exit 2
	;;
esac
