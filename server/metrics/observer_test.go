package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/metrics"
)

// TestObserverLabels calls the observer methods directly and checks the
// series they land in, the out-of-range inputs included.
func TestObserverLabels(t *testing.T) {
	m := metrics.New("test")
	m.Request(protocol.CmdGet, 200, time.Millisecond)
	m.Request("", 400, time.Millisecond)               // no command
	m.Request("get", 200, time.Millisecond)            // not canonical: unknown
	m.Request(protocol.CmdPing, 299, time.Millisecond) // a status the protocol has not
	m.Request(protocol.CmdPing, -1, time.Millisecond)
	m.Request(protocol.CmdPing, 1000, time.Millisecond)
	m.Login(auth.LoginOK)
	m.Login("made-up") // counted as an error, not as a new series
	m.LimitHit(server.LimitLineTooLong)
	m.LimitHit("made-up") // ignored
	m.ConnRejected(server.LimitMaxConns)
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()

	got, err := testutil.GatherAndCount(m.Registry(), "authline_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if got != 4 {
		t.Errorf("authline_requests_total has %d series, want 4 (GET 200, unknown 400, unknown 200, PING other)", got)
	}
	for _, tt := range []struct {
		name string
		text string
	}{
		{"authline_requests_total", `
# HELP authline_requests_total Request lines answered, by command ("unknown" for a line that names no known command) and response status.
# TYPE authline_requests_total counter
authline_requests_total{cmd="GET",status="200"} 1
authline_requests_total{cmd="PING",status="other"} 3
authline_requests_total{cmd="unknown",status="200"} 1
authline_requests_total{cmd="unknown",status="400"} 1
`},
		{"authline_connections_open", `
# HELP authline_connections_open Client connections open now.
# TYPE authline_connections_open gauge
authline_connections_open 1
`},
		{"authline_connections_total", `
# HELP authline_connections_total Client connections admitted (those refused by a connection limit count in authline_limit_hits_total).
# TYPE authline_connections_total counter
authline_connections_total 2
`},
	} {
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(tt.text), tt.name); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	count := func(name string) int {
		n, err := testutil.GatherAndCount(m.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("authline_logins_total"); n != len(auth.LoginOutcomes) {
		t.Errorf("authline_logins_total has %d series, want one per outcome (%d)", n, len(auth.LoginOutcomes))
	}
	if n := count("authline_limit_hits_total"); n != len(server.ObservedLimits)+len(auth.ObservedLimits) {
		t.Errorf("authline_limit_hits_total has %d series, want one per limit", n)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP authline_logins_total LOGIN requests by outcome.
# TYPE authline_logins_total counter
authline_logins_total{outcome="bad_credentials"} 0
authline_logins_total{outcome="bad_request"} 0
authline_logins_total{outcome="busy"} 0
authline_logins_total{outcome="disabled"} 0
authline_logins_total{outcome="error"} 1
authline_logins_total{outcome="ok"} 1
authline_logins_total{outcome="rate_limited"} 0
authline_logins_total{outcome="throttled"} 0
authline_logins_total{outcome="unavailable"} 0
`), "authline_logins_total"); err != nil {
		t.Error(err)
	}
	for limit, want := range map[string]float64{server.LimitLineTooLong: 1, server.LimitMaxConns: 1, server.LimitIdleTimeout: 0} {
		if v := limitValue(t, m, limit); v != want {
			t.Errorf("limit %s: %v, want %v", limit, v, want)
		}
	}
}

// limitValue is the value of authline_limit_hits_total{limit=limit}.
func limitValue(t *testing.T, m *metrics.Metrics, limit string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "authline_limit_hits_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			if l := s.GetLabel(); len(l) == 1 && l[0].GetValue() == limit {
				return s.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no authline_limit_hits_total{limit=%q}", limit)
	return 0
}

// TestRequestAllocatesNothing: once a series exists, observing a request
// allocates nothing.
func TestRequestAllocatesNothing(t *testing.T) {
	m := metrics.New("test")
	m.Request(protocol.CmdGet, 200, time.Microsecond) // creates the series
	if n := testing.AllocsPerRun(1000, func() { m.Request(protocol.CmdGet, 200, time.Microsecond) }); n != 0 {
		t.Fatalf("Request allocates %v times per call, want 0", n)
	}
	m.Request("", 400, time.Microsecond)
	if n := testing.AllocsPerRun(1000, func() { m.Request("", 400, time.Microsecond) }); n != 0 {
		t.Fatalf("Request of an unknown command allocates %v times per call, want 0", n)
	}
}

// BenchmarkRequest is the observer's cost per request.
func BenchmarkRequest(b *testing.B) {
	m := metrics.New("bench")
	b.ReportAllocs()
	for b.Loop() {
		m.Request(protocol.CmdGet, 200, time.Microsecond)
	}
}
