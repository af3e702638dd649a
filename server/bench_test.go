package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/authline/authline/server/servertest"
)

// The request-path benchmarks run a servertest server on real loopback TCP
// and drive it from one connection that pipelines batches of benchBatch
// requests, then reads the benchBatch response lines. Each benchmark
// operation is ONE request: ns/op is the time per request and allocs/op
// the allocations per request, at a pipeline depth of benchBatch.
//
// The allocation counts are process-wide, so they include the test's
// client side as well as the server's. The client is kept allocation-free
// in the loop (a prebuilt request buffer, bufio.Reader.ReadSlice into the
// reader's own buffer), so what is counted is, in practice, the server's.
//
// The request parser alone is benchmarked in package protocol
// (BenchmarkParseRequestInlineGet and friends); these measure the whole
// path: read, parse, authenticate, encode, write.
//
//	go test -run '^$' -bench 'SessionGET|TokenGET|Ping' -benchmem ./server/

const (
	benchBatch    = 64
	benchUser     = "benchuser"
	benchPassword = "bench-password-1"
)

// benchConn is a client connection of a benchmark.
type benchConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialBench(b *testing.B) (*servertest.Server, *benchConn) {
	b.Helper()
	return dialBenchWith(b, servertest.Options{})
}

// dialBenchWith is dialBench with a server started with opts.
func dialBenchWith(b *testing.B, opts servertest.Options) (*servertest.Server, *benchConn) {
	b.Helper()
	srv := servertest.Start(b, opts)
	srv.AddUser(b, benchUser, benchPassword, "user")
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	bc := &benchConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	bc.deadline(b)
	if line := bc.line(b); !bytes.Contains(line, []byte(`"event":"hello"`)) {
		b.Fatalf("greeting: %s", line)
	}
	return srv, bc
}

// deadline bounds the reads that follow.
func (bc *benchConn) deadline(b *testing.B) {
	if err := bc.c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		b.Fatalf("deadline: %v", err)
	}
}

// line reads one response line; the slice is valid until the next read.
func (bc *benchConn) line(b *testing.B) []byte {
	line, err := bc.r.ReadSlice('\n')
	if err != nil {
		b.Fatalf("read: %v", err)
	}
	return line
}

// do sends one request and returns its response (copied).
func (bc *benchConn) do(b *testing.B, req string) []byte {
	b.Helper()
	if _, err := bc.c.Write([]byte(req + "\n")); err != nil {
		b.Fatalf("write: %v", err)
	}
	bc.deadline(b)
	line := bc.line(b)
	if !bytes.Contains(line, []byte(`"ok":true`)) {
		b.Fatalf("%s: %s", req, line)
	}
	return bytes.Clone(line)
}

// run sends b.N copies of req (without its "\n"), pipelined benchBatch at
// a time, and checks that every response is a success.
func (bc *benchConn) run(b *testing.B, req string) {
	b.Helper()
	one := []byte(req + "\n")
	batch := bytes.Repeat(one, benchBatch)
	ok := []byte(`"ok":true`)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBatch, b.N-done)
		bc.deadline(b) // once per batch, to keep the client's share small
		if _, err := bc.c.Write(batch[:n*len(one)]); err != nil {
			b.Fatalf("write: %v", err)
		}
		for range n {
			if line := bc.line(b); !bytes.Contains(line, ok) {
				b.Fatalf("%s: %s", req, line)
			}
		}
		done += n
	}
	b.StopTimer()
}

// runEach sends b.N copies of req one at a time, each after the previous
// response: the connection goes idle between requests, as with a client
// that does not pipeline.
func (bc *benchConn) runEach(b *testing.B, req string) {
	b.Helper()
	one := []byte(req + "\n")
	ok := []byte(`"ok":true`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%benchBatch == 0 {
			bc.deadline(b)
		}
		if _, err := bc.c.Write(one); err != nil {
			b.Fatalf("write: %v", err)
		}
		if line := bc.line(b); !bytes.Contains(line, ok) {
			b.Fatalf("%s: %s", req, line)
		}
	}
	b.StopTimer()
}

// BenchmarkSessionGETRoundTrip is BenchmarkSessionGET without pipelining:
// every request finds the connection idle (see conn.waitIdle).
func BenchmarkSessionGETRoundTrip(b *testing.B) {
	_, bc := dialBench(b)
	bc.do(b, "LOGIN "+benchUser+" "+benchPassword)
	bc.runEach(b, "GET protected")
}

// BenchmarkSessionGET is "GET protected" on a connection with a session.
func BenchmarkSessionGET(b *testing.B) {
	_, bc := dialBench(b)
	bc.do(b, "LOGIN "+benchUser+" "+benchPassword)
	bc.run(b, "GET protected")
}

// BenchmarkTokenGET is "GET protected TOKEN" with a token-mode login's
// token, on a connection without a session.
func BenchmarkTokenGET(b *testing.B) {
	_, bc := dialBench(b)
	resp := bc.do(b, "LOGIN "+benchUser+" "+benchPassword+" token")
	var m struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp, &m); err != nil || m.Data.Token == "" {
		b.Fatalf("token login: %v: %s", err, resp)
	}
	bc.run(b, "GET protected "+m.Data.Token)
}

// BenchmarkPing is PING, which needs no authentication.
func BenchmarkPing(b *testing.B) {
	_, bc := dialBench(b)
	bc.run(b, "PING")
}

// TestIdleWaitAllocatesNothing: a request that finds its connection idle
// (no pipelining: the common case) allocates no more than a pipelined one,
// the content string of Resource. The wait for readability with no buffer
// (conn.readWhenReadable) once allocated its callback and results per
// request: 4 allocations per GET.
func TestIdleWaitAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark; skipped with -short")
	}
	if raceEnabled {
		// The race detector's sync.Pool drops pooled buffers at random,
		// so counts mean nothing; .ci/run runs this without -race.
		t.Skip("allocation counts need a build without -race (.ci/run runs it so)")
	}
	r := testing.Benchmark(BenchmarkSessionGETRoundTrip)
	if r.N == 0 {
		t.Fatal("the benchmark failed")
	}
	perOp := float64(r.MemAllocs) / float64(r.N)
	t.Logf("%d requests, %.2f allocations each", r.N, perOp)
	if perOp >= 2 {
		t.Fatalf("%.2f allocations per GET that finds its connection idle, want 1 (the content string)", perOp)
	}
}
