package server_test

import (
	"testing"

	"github.com/authline/authline/server/metrics"
	"github.com/authline/authline/server/servertest"
)

// The benchmarks of bench_test.go again, with Prometheus metrics on
// (servertest.Options.Metrics, as `authlined serve --metrics-listen`
// sets up): the observer on the request path must cost little time and
// no allocation.
//
//	go test -run '^$' -bench 'SessionGET|Ping' -benchmem ./server/

// dialBenchMetrics is dialBench with a server that has metrics.
func dialBenchMetrics(b *testing.B) (*metrics.Metrics, *benchConn) {
	b.Helper()
	m := metrics.New("bench")
	_, bc := dialBenchWith(b, servertest.Options{Metrics: m})
	return m, bc
}

// BenchmarkSessionGETMetrics is BenchmarkSessionGET with metrics on.
func BenchmarkSessionGETMetrics(b *testing.B) {
	_, bc := dialBenchMetrics(b)
	bc.do(b, "LOGIN "+benchUser+" "+benchPassword)
	bc.run(b, "GET protected")
}

// BenchmarkPingMetrics is BenchmarkPing with metrics on.
func BenchmarkPingMetrics(b *testing.B) {
	_, bc := dialBenchMetrics(b)
	bc.run(b, "PING")
}

// TestMetricsAddNoAllocations runs the session GET benchmark without and
// with metrics: the observer must not add an allocation per request.
func TestMetricsAddNoAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two benchmarks; skipped with -short")
	}
	perOp := func(r testing.BenchmarkResult) float64 { return float64(r.MemAllocs) / float64(r.N) }
	base := testing.Benchmark(BenchmarkSessionGET)
	with := testing.Benchmark(BenchmarkSessionGETMetrics)
	if base.N == 0 || with.N == 0 {
		t.Fatalf("a benchmark failed: %d and %d ops", base.N, with.N)
	}
	t.Logf("session GET: %.2f allocs/op, %v/op without metrics; %.2f allocs/op, %v/op with",
		perOp(base), base.NsPerOp(), perOp(with), with.NsPerOp())
	// Background work (the change-feed follower) allocates now and then
	// in both runs; a tenth of an allocation per request is far less than
	// one per request.
	if perOp(with) > perOp(base)+0.1 {
		t.Fatalf("metrics add allocations: %.2f allocs/op with, %.2f without", perOp(with), perOp(base))
	}
}
