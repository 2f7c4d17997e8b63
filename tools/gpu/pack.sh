#!/usr/bin/env bash
# Packs what a GPU machine without network needs to run the CUDA tests and
# benchmarks into .carry/gpu/ (ignored by git; name it in the device tool's
# `carry`): our binaries built for sm_90 with the shared libraries Debian
# links them against (xz-compressed: ICU's data is 30 MB), and, when built,
# llama.cpp with CUDA (tools/gpu/build-llama-cuda.sh) for the side-by-side
# benchmark.  Then on the GPU machine: tools/gpu/on-device.sh STAGE.
set -eu
cd "$(dirname "$0")/../.."
arch=${CUDA_ARCHS:-90}
make -j"$(nproc)" CUDA_ARCHS="$arch" cuda build/expertcache >/dev/null
out=.carry/gpu
mkdir -p "$out"
libs=$(ldd build/expertcache build/tests/gpu/* 2>/dev/null |
	awk '/=> \// {print $3}' | sort -u |
	grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libz|libdl|libpthread|librt)\.so')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
for l in $libs; do cp -L "$l" "$stage/lib/"; done
tar cJf "$out/ours.tar.xz" build/expertcache build/libexpertcache_cuda.so \
	build/tests/gpu build/cuda/emu_selftest -C "$stage" lib
echo "$out/ours.tar.xz: $(du -h "$out/ours.tar.xz" | cut -f1)" \
	"(sm_$arch; libraries: $(ls "$stage/lib" | tr '\n' ' '))"
if [ -d build/llama-cuda/bin ]; then
	tar cJf "$out/llama-cuda.tar.xz" -C build/llama-cuda bin
	echo "$out/llama-cuda.tar.xz: $(du -h "$out/llama-cuda.tar.xz" |
		cut -f1)"
else
	echo "no build/llama-cuda (tools/gpu/build-llama-cuda.sh): the" \
		"llama.cpp comparison will be skipped"
fi
du -sh "$out"
