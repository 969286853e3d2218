#!/usr/bin/env bash
# Router lookup benchmark (issue 13): 1,000 routes, 5,000 lookups, the same table for Go's
# http.ServeMux and zerohttp's router. The table (routes.txt, lookups.txt, lookups.expect)
# is written by gen_routes.py and committed, so both sides read exactly the same bytes; this
# script first checks that the committed files are still what the generator writes.
#
# Go side: needs Go >= 1.22 (earlier ServeMux has no methods or wildcards). Taken from $GO,
# then /opt/go1.22/bin/go, then Debian's /usr/lib/go-1.NN, then `go` on PATH; without one
# the Go side prints "skipped" and the script goes on. It runs
#   go test -run '^TestTable$' -bench . -benchmem -count $BENCH_COUNT -cpu 1
# pinned to CPU $BENCH_CPU (default 0, like bench/json_writer in make bench) and prints the
# median of the runs per lookup class. TestTable (ServeMux agrees with lookups.expect) runs
# first and a failure fails the script.
#
# Environment: GO, BENCH_COUNT (default 5), BENCH_CPU (default 0),
# ZH_ROUTER_BENCH (default build/bench/router_bench), ROUTER_BENCH_RAW (a file to keep
# go test's own output in).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${BENCH_COUNT:-5}
cpu=${BENCH_CPU:-0}

pin() { # run "$@" on CPU $cpu when taskset is there
	if command -v taskset >/dev/null; then taskset -c "$cpu" "$@"; else "$@"; fi
}

median() { # the median of the numbers on stdin, one a line
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

minimum() { # the least of the numbers on stdin (the run least disturbed by other load)
	sort -g | awk 'NR == 1 { m = $1 } END { print (NR ? m : "-") }'
}

# metric FILE CLASS UNIT [median|minimum]: over the runs, the median (or least) of
# BenchmarkServeMux/CLASS's UNIT figure.
metric() {
	awk -v b="BenchmarkServeMux/$2" -v u="$3" '$1 == b || index($1, b "-") == 1 {
		for (i = 2; i <= NF; i++) if ($i == u) print $(i - 1) }' "$1" | "${4:-median}"
}

# go_ok GO: true if GO runs and is Go 1.22 or later.
go_ok() {
	local v
	v=$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) || return 1
	[[ $v =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 22))
}

find_go() {
	local c
	local -a cands=()
	[[ -n ${GO:-} ]] && cands+=("$GO")
	cands+=(/opt/go1.22/bin/go)
	# Debian's versioned packages (bookworm-backports has golang-1.22-go), newest first.
	while IFS= read -r c; do
		[[ -d $c ]] && cands+=("$c/bin/go")
	done < <(printf '%s\n' /usr/lib/go-1.* | sort -t. -k2,2nr)
	c=$(command -v go || true)
	[[ -n $c ]] && cands+=("$c")
	for c in "${cands[@]}"; do
		if [[ -x $c ]] && go_ok "$c"; then
			echo "$c"
			return 0
		fi
	done
	if [[ -n ${GO:-} ]]; then echo "router bench: GO=$GO is not Go >= 1.22" >&2; fi
	return 1
}

go_side() {
	local go out ver c
	if ! go=$(find_go); then
		cat <<-'EOF'
		Go ServeMux: skipped (needs Go >= 1.22, found none). Either set GO=/path/to/go, or on
		Debian 12 enable the bookworm-backports suite and `apt-get install -t bookworm-backports
		golang-1.22-go` (installs /usr/lib/go-1.22), or build Go 1.22 from source under
		/opt/go1.22 (bootstrap: Go 1.19 -> 1.20 -> 1.22).
		EOF
		return 0
	fi
	# No network and no toolchain switching: the module uses the standard library only.
	export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
	if [[ -z ${HOME:-} ]]; then # go needs a cache and a GOPATH; CI may run without HOME
		export GOCACHE=${GOCACHE:-$root/build/go/cache} GOPATH=${GOPATH:-$root/build/go/path}
	fi
	ver=$("$go" env GOVERSION)
	out=$(mktemp)
	# shellcheck disable=SC2064
	trap "rm -f '$out'" RETURN
	echo "Go ServeMux: $go ($ver), go test -run '^TestTable\$' -bench . -benchmem -count $count -cpu 1, CPU $cpu"
	(cd "$here" && pin "$go" test -run '^TestTable$' -bench . -benchmem -count "$count" -cpu 1 .) >"$out" 2>&1 || {
		cat "$out" >&2
		echo "router bench: go test failed" >&2
		return 1
	}
	if [[ -n ${ROUTER_BENCH_RAW:-} ]]; then cp "$out" "$ROUTER_BENCH_RAW"; fi
	grep -E '^(goos|goarch|cpu):' "$out" || true
	echo "| ServeMux $ver, 1,000 routes | lookups | ns/lookup (median of $count) | ns/lookup (min) | allocs/lookup | B/lookup |"
	echo "|---|---:|---:|---:|---:|---:|"
	# Lookups per class, classified like the Go test does (by the expected route's pattern).
	local -A n
	while read -r c k; do n[$c]=$k; done < <(awk '
		NR == FNR { pat[FNR] = $2; next }
		{ all++ }
		$1 == 200 { cnt["hits"]++; p = pat[$2]; cnt[p ~ /\.\.\.}/ ? "catchall" : p ~ /{/ ? "param" : "static"]++; next }
		{ cnt[$1]++ }
		END { print "all", all; for (k in cnt) print k, cnt[k] }' "$here/routes.txt" "$here/lookups.expect")
	for c in all hits static param catchall 404 405; do
		local ns mn al by
		ns=$(metric "$out" "$c" ns/lookup)
		mn=$(metric "$out" "$c" ns/lookup minimum)
		al=$(metric "$out" "$c" allocs/lookup)
		by=$(metric "$out" "$c" B/lookup)
		printf '| %s | %s | %s | %s | %s | %s |\n' "$c" "${n[$c]:-0}" "$ns" "$mn" "$al" "$by"
		[[ $c == all ]] && GO_NS_PER_LOOKUP=$ns
	done
	return 0
}

# zerohttp side: bench/router_lookup.c (outside this directory: go test refuses C files in a
# package without cgo). It reads the same routes.txt and lookups.txt, checks its answer to
# every lookup against lookups.expect (the answers ServeMux gives: TestTable) and fails on a
# difference; compare its ns/lookup with the "all" row above (target: at most 0.5x, 0
# allocations).
c_side() {
	local bin=${ZH_ROUTER_BENCH:-$root/build/bench/router_bench}
	if [[ -n $GO_NS_PER_LOOKUP ]]; then
		awk -v g="$GO_NS_PER_LOOKUP" 'BEGIN { printf "target for zerohttp (all): <= %.0f ns/lookup (0.5 x ServeMux on this run), 0 allocations\n", g / 2 }'
	fi
	if [[ ! -x $bin ]]; then
		echo "zerohttp router: $bin not built, skipped"
		return 0
	fi
	echo "zerohttp router: $bin"
	(cd "$root" && pin "$bin" "$here/routes.txt" "$here/lookups.txt" "$here/lookups.expect")
}

python3 "$here/gen_routes.py" --out "$here" --check
GO_NS_PER_LOOKUP=
go_side
c_side
