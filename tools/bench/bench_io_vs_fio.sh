#!/usr/bin/env bash
# Side by side: `expertcache bench-io` against fio (io_uring, O_DIRECT,
# random reads) on the same file, same block size and queue depth,
# alternating runs so both see the same device state.  Prints a markdown
# table of medians and the ratio ours / fio.
#
#   tools/bench/bench_io_vs_fio.sh [FILE] [SECONDS] [ROUNDS]
#
# FILE defaults to build/bench/io.bin (4 GiB of random data, created once).
# Override the grid with BS="4k 128k 1m" QD="1 32".
set -euo pipefail
cd "$(dirname "$0")/../.."

file=${1:-build/bench/io.bin}
secs=${2:-10}
rounds=${3:-3}
bs_list=${BS:-"4k 128k 1m 4m"}
qd_list=${QD:-"32"}
cli=${EXPERTCACHE:-build/expertcache}

command -v fio >/dev/null || { echo "fio is not installed" >&2; exit 1; }
[ -x "$cli" ] || { echo "$cli missing: run make" >&2; exit 1; }
if [ ! -f "$file" ]; then
	mkdir -p "$(dirname "$file")"
	echo "creating $file (4 GiB of random data)" >&2
	dd if=/dev/urandom of="$file" bs=1M count=4096 status=none
fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| bs | qd | expertcache bench-io GB/s | fio GB/s | ratio |"
echo "|---|---|---|---|---|"
for bs in $bs_list; do
	for qd in $qd_list; do
		ours=() theirs=()
		for ((r = 0; r < rounds; r++)); do
			o=$("$cli" bench-io "$file" --bs "$bs" --qd "$qd" \
				--seconds "$secs" --json 2>/dev/null |
				python3 -c 'import json,sys; print(json.load(sys.stdin)["gbps"])')
			f=$(fio --name=bench --filename="$file" --ioengine=io_uring \
				--direct=1 --rw=randread --bs="$bs" --iodepth="$qd" \
				--runtime="$secs" --time_based --norandommap \
				--randrepeat=0 --output-format=json 2>/dev/null |
				python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"]/1e9)')
			ours+=("$o") theirs+=("$f")
		done
		mo=$(printf '%s\n' "${ours[@]}" | median)
		mf=$(printf '%s\n' "${theirs[@]}" | median)
		ratio=$(python3 -c "print(f'{$mo / $mf:.2f}' if $mf else 'n/a')")
		printf '| %s | %s | %.3f | %.3f | %s |\n' "$bs" "$qd" "$mo" "$mf" \
			"$ratio"
	done
done
