// Go's http.ServeMux on the router benchmark's table, the baseline for zerohttp's router
// (issue 13: at most 0.5x ServeMux's time per lookup, 0 allocations).
//
// It reads the files gen_routes.py writes (ROUTER_BENCH_DIR, default this directory):
// routes.txt (`METHOD PATTERN`), lookups.txt (`METHOD PATH`) and lookups.expect (`200 N`,
// `404` or `405` per lookup). TestTable checks that every route registers (ServeMux panics
// on a conflict or a malformed pattern) and that ServeMux answers each lookup as the
// generator's own matcher says; the benchmarks then time the lookups.
//
// What is timed: mux.Handler(req) on *http.Request values built before the timer starts.
// Handler runs the same findHandler as ServeHTTP (host and path canonicalisation, the
// routing-tree walk, which collects the wildcard values, and for a miss the 404/405
// decision, including the Allow list) and returns the handler without calling it.
// ServeHTTP would add what is not lookup: storing the pattern and values in the request,
// and running the handler, whose 404/405 responses write headers and a body.
package routerbench

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

type lookup struct {
	req    *http.Request
	status int // 200, 404 or 405, from lookups.expect
	route  int // 0-based index into routes when status is 200
	class  string
}

type table struct {
	routes  []string // "METHOD PATTERN", as registered and as Handler reports it
	lookups []lookup
}

func dataDir() string {
	if d := os.Getenv("ROUTER_BENCH_DIR"); d != "" {
		return d
	}
	return "."
}

func readLines(tb testing.TB, name string) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join(dataDir(), name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// load reads the table and registers every route in a new ServeMux.
func load(tb testing.TB) (*http.ServeMux, *table) {
	tb.Helper()
	t := &table{routes: readLines(tb, "routes.txt")}
	mux := http.NewServeMux()
	for i, r := range t.routes {
		func() {
			defer func() {
				if p := recover(); p != nil {
					tb.Fatalf("routes.txt:%d %q: %v", i+1, r, p)
				}
			}()
			mux.Handle(r, noop)
		}()
	}
	lines := readLines(tb, "lookups.txt")
	expect := readLines(tb, "lookups.expect")
	if len(lines) != len(expect) {
		tb.Fatalf("lookups.txt has %d lines, lookups.expect %d", len(lines), len(expect))
	}
	for i, line := range lines {
		method, path, ok := strings.Cut(line, " ")
		if !ok {
			tb.Fatalf("lookups.txt:%d: want METHOD PATH, got %q", i+1, line)
		}
		req, err := http.NewRequest(method, "http://bench.local"+path, nil)
		if err != nil {
			tb.Fatalf("lookups.txt:%d: %v", i+1, err)
		}
		lk := lookup{req: req, route: -1}
		code, n, _ := strings.Cut(expect[i], " ")
		if lk.status, err = strconv.Atoi(code); err != nil {
			tb.Fatalf("lookups.expect:%d: %q", i+1, expect[i])
		}
		switch lk.status {
		case 200:
			if lk.route, err = strconv.Atoi(n); err != nil || lk.route < 1 || lk.route > len(t.routes) {
				tb.Fatalf("lookups.expect:%d: %q", i+1, expect[i])
			}
			lk.route--
			switch pat := t.routes[lk.route]; {
			case strings.Contains(pat, "...}"):
				lk.class = "catchall"
			case strings.Contains(pat, "{"):
				lk.class = "param"
			default:
				lk.class = "static"
			}
		case 404:
			lk.class = "404"
		case 405:
			lk.class = "405"
		default:
			tb.Fatalf("lookups.expect:%d: %q", i+1, expect[i])
		}
		t.lookups = append(t.lookups, lk)
	}
	return mux, t
}

// TestTable: every route registers, ServeMux agrees with lookups.expect on every lookup,
// and every route is hit at least once.
func TestTable(t *testing.T) {
	mux, tab := load(t)
	if len(tab.routes) != 1000 {
		t.Errorf("routes.txt: %d routes, want 1000", len(tab.routes))
	}
	hit := make([]bool, len(tab.routes))
	for i, lk := range tab.lookups {
		h, pattern := mux.Handler(lk.req)
		where := fmt.Sprintf("lookups.txt:%d %s %s", i+1, lk.req.Method, lk.req.URL.Path)
		if lk.status == 200 {
			if want := tab.routes[lk.route]; pattern != want {
				t.Errorf("%s: ServeMux chose %q, lookups.expect says %q", where, pattern, want)
			}
			hit[lk.route] = true
			continue
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, lk.req)
		if pattern != "" || rec.Code != lk.status {
			t.Errorf("%s: ServeMux answered %d (pattern %q), lookups.expect says %d",
				where, rec.Code, pattern, lk.status)
		}
	}
	for i, h := range hit {
		if !h {
			t.Errorf("routes.txt:%d %q: no lookup hits it", i+1, tab.routes[i])
		}
	}
}

var sink http.Handler

// benchLookups times one pass over reqs per iteration and reports the figures per lookup:
// ns/lookup, and allocs/lookup and B/lookup from the runtime's own malloc counters
// (-benchmem's allocs/op is per pass and rounded down to an integer).
func benchLookups(b *testing.B, mux *http.ServeMux, reqs []*http.Request) {
	if len(reqs) == 0 {
		b.Skip("no lookups of this class")
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range reqs {
			sink, _ = mux.Handler(r)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(len(reqs))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/lookup")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/lookup")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/lookup")
}

// BenchmarkServeMux: "all" is the whole of lookups.txt in its order (the figure to compare
// with zerohttp's); "hits" is all but the 404 and 405 lookups (ServeMux's misses cost several
// times a hit and allocate, so they weigh heavily in "all"); the others split the same
// lookups by what they hit.
func BenchmarkServeMux(b *testing.B) {
	mux, tab := load(b)
	classes := []string{"all", "hits", "static", "param", "catchall", "404", "405"}
	byClass := map[string][]*http.Request{}
	for _, lk := range tab.lookups {
		byClass["all"] = append(byClass["all"], lk.req)
		if lk.status == 200 {
			byClass["hits"] = append(byClass["hits"], lk.req)
		}
		byClass[lk.class] = append(byClass[lk.class], lk.req)
	}
	for _, c := range classes {
		reqs := byClass[c]
		b.Run(c, func(b *testing.B) { benchLookups(b, mux, reqs) })
	}
}
