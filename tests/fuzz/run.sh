#!/bin/sh
# run.sh — what `make fuzz` runs (see the fuzz section of the Makefile).
#
#   run.sh deps                              clang with libFuzzer, or the apt-get command
#   run.sh run DIR SECONDS JOBS TARGET...    each DIR/fuzz_TARGET for SECONDS, JOBS at once
#
# Each target works on a scratch copy of tests/fuzz/corpus/TARGET in DIR/work/TARGET (made
# anew each run: the committed seeds are never written to). SECONDS=0 replays the seeds only.
# A crash, leak, sanitizer report or failed invariant makes the run fail, naming the target
# and the reproducer; replay one with DIR/fuzz_TARGET REPRODUCER.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

deps() {
	t=$(mktemp -d)
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$t/probe.c"
	if command -v clang >/dev/null 2>&1 &&
	   clang -fsanitize=fuzzer,address,undefined -o "$t/probe" "$t/probe.c" >/dev/null 2>&1; then
		rm -rf "$t"
		return 0
	fi
	rm -rf "$t"
	need="clang libclang-rt-14-dev"
	if [ "$(id -u)" != 0 ]; then
		echo "make fuzz needs clang with libFuzzer" >&2
		echo "run: sudo apt-get install -y $need" >&2
		exit 1
	fi
	echo "zerohttp: installing $need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
}

# One target; prints one summary line, and the report on failure. Exit status: libFuzzer's.
one() {
	dir=$1 secs=$2 target=$3
	bin=$dir/fuzz_$target work=$dir/work/$target
	rm -rf "$work"
	mkdir -p "$work/corpus"
	cp "$here/corpus/$target/"* "$work/corpus/"
	# a smaller quarantine keeps two targets at once well under the RSS limit
	export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
	start=$(date +%s)
	if [ "$secs" = 0 ]; then
		set -- "$work/corpus/"*
		status=0
		"$bin" -artifact_prefix="$work/" "$@" >"$work/log" 2>&1 || status=$?
		summary="replayed $# seeds"
	else
		status=0
		"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1 || status=$?
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
		cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/log" | tail -1 |
			sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\)\/\([^ ]*\).*/cov \1, features \2, corpus \3 (\4)/p')
		summary="$secs s, ${execs:-?} execs (${rate:-?}/s), ${cov:-?}"
	fi
	elapsed=$(($(date +%s) - start))
	if [ "$status" = 0 ]; then
		echo "fuzz_$target: ok: $summary, ${elapsed} s wall"
		return 0
	fi
	echo "fuzz_$target: FAILED (status $status): $summary" >&2
	grep -E 'INVARIANT FAILED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' \
		"$work/log" | head -5 >&2 || true
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -e "$f" ] && echo "  reproducer: $f   (replay: $bin $f)" >&2
	done
	echo "  full log: $work/log" >&2
	return 1
}

case "${1:-}" in
deps)
	deps
	;;
run)
	dir=$2 secs=$3 jobs=$4
	shift 4
	# xargs exits non-zero if any target failed; every target still runs to its end
	printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh "$0" one "$dir" "$secs" {}
	;;
one)
	one "$2" "$3" "$4"
	;;
*)
	echo "usage: $0 deps | run DIR SECONDS JOBS TARGET... | one DIR SECONDS TARGET" >&2
	exit 2
	;;
esac
