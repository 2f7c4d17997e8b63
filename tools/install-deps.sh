#!/usr/bin/env bash
# Installs the Debian packages expertcache builds and tests with.  As root it
# runs apt-get; otherwise it prints the exact command to run.  Idempotent and
# quiet when everything is already there.
set -eu
pkgs=(build-essential pkg-config clang llvm libclang-rt-14-dev
      liburing-dev libnuma-dev libbpf-dev bpftool libpcre2-dev libjansson-dev
      libicu-dev zlib1g-dev libelf-dev
      systemtap-sdt-dev python3-venv fio
      linux-headers-amd64 linux-image-amd64 qemu-system-x86 busybox-static
      cpio)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "expertcache needs these Debian packages; run as root:" >&2
	echo "  apt-get update && $cmd" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
