#!/usr/bin/env bash
# Builds llama.cpp with CUDA (the version vendored by llama-cpp-python
# 0.3.36, the one the CPU benchmarks use) into build/llama-cuda/bin, for the
# GPU side-by-side benchmark (tools/bench/bench_gpu_vs_llamacpp.py).  GPU
# machines here have no network, so it is built on the development machine
# and carried (tools/gpu/pack.sh).  Takes about an hour on 2 cores.
#   CUDA_ARCHS=90 tools/gpu/build-llama-cuda.sh
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
ver=0.3.36
arch=${CUDA_ARCHS:-90}
src=build/llama-src
mkdir -p "$src"
if [ ! -d "$src/llama_cpp_python-$ver" ]; then
	python3 -m pip download --no-deps --no-binary :all: \
		"llama-cpp-python==$ver" -d "$src"
	tar xzf "$src/llama_cpp_python-$ver.tar.gz" -C "$src"
fi
bld=build/llama-cuda-build
# CPU variants chosen at run time (the GPU machine's CPU is not this one);
# relative rpath so the folder can move.
cmake -S "$src/llama_cpp_python-$ver/vendor/llama.cpp" -B "$bld" \
	-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
	-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
	-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
	-DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_RPATH='$ORIGIN' \
	-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON >/dev/null
nice cmake --build "$bld" -j"$(nproc)" --target llama-bench ggml-cuda \
	$(cmake --build "$bld" --target help | grep -oE 'ggml-cpu-[a-z0-9_]+' |
		sort -u)
mkdir -p build/llama-cuda/bin
cp -L "$bld"/bin/llama-bench "$bld"/bin/*.so* build/llama-cuda/bin/
strip --strip-unneeded build/llama-cuda/bin/* 2>/dev/null || true
echo "$root/build/llama-cuda/bin: $(du -sh build/llama-cuda/bin | cut -f1)"
