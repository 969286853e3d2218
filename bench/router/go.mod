// The Go side of the router benchmark (see mux_bench_test.go). Standard library only.
// The go directive must stay at 1.22 or later: below it ServeMux keeps its pre-1.22
// behaviour (no methods, no wildcards; GODEBUG httpmuxgo121=1).
module zerohttp.bench/router

go 1.22
