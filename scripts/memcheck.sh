#!/bin/sh
# make memcheck: the integration tests with every zerohttpd and json_server under valgrind
# memcheck. Passes when every server's valgrind log reports 0 errors and no definitely or
# indirectly lost block; tests that only measure memory, CPU or tight timings skip
# themselves under ZH_WRAP (tests/integration/harness.py), the others must still pass.
#   scripts/memcheck.sh ZERHOTTPD JSON_SERVER [run.py args...]
set -eu
daemon=$1 json_server=$2
shift 2
command -v valgrind >/dev/null 2>&1 || { echo "memcheck: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
logs=$(mktemp -d /tmp/zh-memcheck.XXXXXX)
status=0
ZH_WRAP="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --track-fds=no --num-callers=30 \
--suppressions=$(pwd)/tests/valgrind.supp \
--log-file=$logs/vg.%p.log" ZH_BIN=$daemon ZH_JSON_SERVER=$json_server \
	python3 tests/integration/run.py "$@" || status=1
n=0 bad=0 unfinished=0
for f in "$logs"/vg.*.log; do
	[ -e "$f" ] || continue
	n=$((n + 1))
	if ! grep -q "ERROR SUMMARY:" "$f"; then
		# killed before valgrind could summarise (a test that SIGKILLs its server)
		unfinished=$((unfinished + 1))
		continue
	fi
	if ! grep -q "ERROR SUMMARY: 0 errors" "$f" || grep -Eq "(definitely|indirectly) lost: [1-9]" "$f"; then
		bad=$((bad + 1))
		echo "== valgrind reports problems in $f:"
		sed -n '/Command:/p;/^==[0-9]*== [A-Z][a-z].*\(Invalid\|uninitialised\|lost in\|Mismatched\|overlap\)/,/^==[0-9]*== $/p' "$f" | head -80
	fi
done
echo "memcheck: $n server processes under valgrind, $bad with errors or leaks, $unfinished killed before their summary (logs in $logs)"
[ "$n" -gt 0 ] || { echo "memcheck: no valgrind log was written" >&2; exit 1; }
[ "$bad" -eq 0 ] || status=1
[ "$status" -eq 0 ] && [ -z "${ZH_KEEP_LOGS:-}" ] && rm -rf "$logs"
exit $status
