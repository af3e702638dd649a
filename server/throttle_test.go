package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
)

// openWireFrom connects from a given loopback address, so tests can play
// clients on several IPs.
func openWireFrom(t *testing.T, addr, from string) *wire {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s on this machine: %v", from, err)
	}
	return startWire(t, nc)
}

func retryAfter(t *testing.T, m protocol.Message) int64 {
	t.Helper()
	var d protocol.RetryData
	if err := json.Unmarshal(m.Data, &d); err != nil || d.RetryAfter <= 0 {
		t.Fatalf("429 without a positive data.retry_after: %s", m.Data)
	}
	return d.RetryAfter
}

var testPolicy = auth.ThrottlePolicy{
	Window:       15 * time.Minute,
	BaseDelay:    time.Second,
	PairFree:     3,
	PairMaxDelay: 15 * time.Minute,
	UserFree:     10,
	UserMaxDelay: time.Minute,
}

func TestLoginThrottleBacksOff(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Throttle: &testPolicy, Now: clk.Now})
	srv.AddUser(t, "tess", "s3cretpass", "user")
	w := openWire(t, srv.Addr)
	for range 3 {
		w.expect("LOGIN tess wrongpass1", 401, protocol.CodeInvalidCredentials)
	}
	// Throttled: even the right password does not get in.
	m := w.expect("LOGIN tess s3cretpass", 429, protocol.CodeRateLimited)
	if ra := retryAfter(t, m); ra != 1 {
		t.Fatalf("retry_after %d, want 1", ra)
	}
	w.expect("WHOAMI", 401, protocol.CodeUnauthenticated)

	// Each further failure doubles the wait, up to the maximum.
	for _, want := range []int64{2, 4, 8, 16} {
		clk.Add(time.Hour / 60 / 2) // 30s: past the current wait, within the window
		w.expect("LOGIN tess wrongpass1", 401, protocol.CodeInvalidCredentials)
		if ra := retryAfter(t, w.expect("LOGIN tess s3cretpass", 429, protocol.CodeRateLimited)); ra != want {
			t.Fatalf("retry_after %d, want %d", ra, want)
		}
	}

	// Once the wait is over the right password works and resets the
	// counter for this address: the next failure is free again.
	clk.Add(20 * time.Second)
	w.expect("LOGIN tess s3cretpass", 200, "")
	w.expect("LOGIN tess wrongpass1", 401, protocol.CodeInvalidCredentials)
	w.expect("LOGIN tess s3cretpass", 200, "")
}

func TestThrottleMaxDelayIsCapped(t *testing.T) {
	clk := newClock(time.Now())
	policy := testPolicy
	policy.PairMaxDelay = 5 * time.Second
	srv := servertest.Start(t, servertest.Options{Throttle: &policy, Now: clk.Now})
	w := openWire(t, srv.Addr)
	var last int64
	for range 8 {
		w.expect("LOGIN ursula wrongpass1", 401, protocol.CodeInvalidCredentials)
		if m := w.do("LOGIN ursula wrongpass1"); m.Error == protocol.CodeRateLimited {
			last = retryAfter(t, m)
		}
		clk.Add(10 * time.Second)
	}
	if last != 5 {
		t.Fatalf("retry_after %d after many failures, want the 5s cap", last)
	}
}

// The attacker's address is slowed hard; the real user logging in from
// elsewhere only by the looser per-username counter.
func TestThrottleIsNotADenialOfService(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Throttle: &testPolicy, Now: clk.Now})
	srv.AddUser(t, "victor", "s3cretpass", "user")
	attacker := openWireFrom(t, srv.Addr, "127.0.0.2")
	victim := openWireFrom(t, srv.Addr, "127.0.0.3")

	// 20 failures from the attacker, each once its wait has passed.
	for range 20 {
		for attacker.do("LOGIN victor guess-guess").Error == protocol.CodeRateLimited {
			clk.Add(time.Minute)
		}
	}
	attackerWait := retryAfter(t, attacker.expect("LOGIN victor s3cretpass", 429, protocol.CodeRateLimited))
	var victimWait int64
	if m := victim.do("LOGIN victor s3cretpass"); m.Error == protocol.CodeRateLimited {
		victimWait = retryAfter(t, m)
	} else if !m.OK {
		t.Fatalf("victim: %+v", m)
	}
	t.Logf("attacker waits %ds, victim %ds", attackerWait, victimWait)
	if victimWait > int64(testPolicy.UserMaxDelay/time.Second) || attackerWait < 10*victimWait || attackerWait < 300 {
		t.Fatalf("attacker waits %ds, victim %ds: the victim must be slowed far less", attackerWait, victimWait)
	}
	clk.Add(time.Duration(victimWait) * time.Second)
	victim.expect("LOGIN victor s3cretpass", 200, "")
}

// Unknown usernames are counted and throttled exactly like real ones, so
// a 429 tells nothing about existence.
func TestThrottleSaysNothingAboutExistence(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Throttle: &testPolicy, Now: clk.Now})
	srv.AddUser(t, "wanda", "s3cretpass", "user")
	w := openWire(t, srv.Addr)
	var got [2][]protocol.Message
	for i, name := range []string{"wanda", "nobody-here"} {
		for range 5 {
			got[i] = append(got[i], w.do("LOGIN "+name+" wrongpass1"))
		}
	}
	for j := range got[0] {
		a, b := got[0][j], got[1][j]
		if a.Status != b.Status || a.Error != b.Error || a.Message != b.Message || string(a.Data) != string(b.Data) {
			t.Fatalf("attempt %d differs: existing %+v, unknown %+v", j, a, b)
		}
	}
	if got[0][4].Error != protocol.CodeRateLimited {
		t.Fatalf("5th failure not throttled: %+v", got[0][4])
	}
}

// Unknown user and wrong password take the same time: compare medians of
// interleaved samples at a bcrypt cost where hashing dominates.
func TestLoginTimingDoesNotRevealUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test skipped in -short mode")
	}
	srv := servertest.Start(t, servertest.Options{BcryptCost: 7, Throttle: &auth.ThrottlePolicy{Disabled: true}})
	srv.AddUser(t, "xena", "s3cretpass", "user")
	w := openWire(t, srv.Addr)
	const samples = 15
	var known, unknown []time.Duration
	for range samples {
		for _, name := range []string{"xena", "xenia"} {
			start := time.Now()
			w.expect("LOGIN "+name+" wrongpass1", 401, protocol.CodeInvalidCredentials)
			d := time.Since(start)
			if name == "xena" {
				known = append(known, d)
			} else {
				unknown = append(unknown, d)
			}
		}
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median LOGIN: wrong password %v, unknown user %v", mk, mu)
	if ratio := float64(mu) / float64(mk); ratio < 0.75 || ratio > 1.33 {
		t.Fatalf("unknown user median %v vs wrong password %v: ratio %.2f reveals which users exist", mu, mk, ratio)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestThrottleSurvivesRestartAndUnlock(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Dir: dir, Throttle: &testPolicy, Now: clk.Now})
	srv.AddUser(t, "yara", "s3cretpass", "user")
	w := openWire(t, srv.Addr)
	for range 3 {
		w.expect("LOGIN yara wrongpass1", 401, protocol.CodeInvalidCredentials)
	}
	srv.Stop(t)

	srv = servertest.Start(t, servertest.Options{Dir: dir, Throttle: &testPolicy, Now: clk.Now})
	w = openWire(t, srv.Addr)
	w.expect("LOGIN yara s3cretpass", 429, protocol.CodeRateLimited)
	if n, err := srv.Service.Unlock(context.Background(), "YARA"); err != nil || n != 2 {
		t.Fatalf("Unlock = %d, %v; want 2 counters cleared", n, err)
	}
	w.expect("LOGIN yara s3cretpass", 200, "")
}

func TestIPRateLimit(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{
		Now:         clk.Now,
		IPRateLimit: &auth.IPRateLimit{PerSecond: 0.5, Burst: 3},
	})
	w := openWire(t, srv.Addr)
	// Spraying one password over many usernames: no username's counter
	// grows, the address's budget does.
	w.expect("REGISTER zed1 s3cretpass", 201, "")
	w.expect("LOGIN zed2 s3cretpass", 401, protocol.CodeInvalidCredentials)
	w.expect("LOGIN zed3 s3cretpass", 401, protocol.CodeInvalidCredentials)
	m := w.expect("LOGIN zed1 s3cretpass", 429, protocol.CodeRateLimited)
	if ra := retryAfter(t, m); ra != 2 {
		t.Fatalf("retry_after %d, want 2 (one attempt per 2s)", ra)
	}
	w.expect("REGISTER zed4 s3cretpass", 429, protocol.CodeRateLimited)
	// Other commands are not limited; another address has its own budget.
	w.expect("PING", 200, "")
	openWireFrom(t, srv.Addr, "127.0.0.4").expect("LOGIN zed1 s3cretpass", 200, "")
	clk.Add(2 * time.Second)
	w.expect("LOGIN zed1 s3cretpass", 200, "")
}

func TestRehashOnLogin(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{BcryptCost: 5})
	hash, err := auth.HashPassword("s3cretpass", 4)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddUser(t, "abe", "placeholder", "user")
	if err := srv.Store.SetPasswordHash(context.Background(), "abe", hash); err != nil {
		t.Fatal(err)
	}
	openWire(t, srv.Addr).expect("LOGIN abe s3cretpass", 200, "")
	u, err := srv.Store.GetUser(context.Background(), "abe")
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(u.PasswordHash); cost != 5 {
		t.Fatalf("hash cost after login = %d, want 5", cost)
	}
	openWire(t, srv.Addr).expect("LOGIN abe s3cretpass", 200, "")
}

// A LOGIN flood fills the bounded hashing queue: the excess is refused at
// once with 503, and GETs on a session never wait behind the hashing.
func TestHashingIsBounded(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{
		BcryptCost:  8,
		HashWorkers: 1,
		HashQueue:   2,
		Throttle:    &auth.ThrottlePolicy{Disabled: true},
	})
	srv.AddUser(t, "bea", "s3cretpass", "user")
	reader := openWire(t, srv.Addr)
	reader.expect("LOGIN bea s3cretpass", 200, "")
	start := time.Now()
	reader.expect("LOGIN bea s3cretpass", 200, "")
	oneHash := time.Since(start)

	const flooders = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[protocol.Code]int{}
	stop := make(chan struct{})
	for i := range flooders {
		nc, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fw := startWire(t, nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fmt.Fprintf(fw.nc, "LOGIN bea wrong-%d-pass\n", i)
				fw.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
				line, err := fw.r.ReadBytes('\n')
				if err != nil {
					return
				}
				var m protocol.Message
				json.Unmarshal(line, &m)
				mu.Lock()
				codes[m.Error]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(oneHash) // let the flood fill the queue
	var lat []time.Duration
	for range 50 {
		start := time.Now()
		reader.expect("GET protected", 200, "")
		reader.expect("WHOAMI", 200, "")
		lat = append(lat, time.Since(start)/2)
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("one bcrypt LOGIN %v; GET/WHOAMI under flood: median %v, max %v; flood outcomes %v", oneHash, median(lat), slices.Max(lat), codes)
	if codes[protocol.CodeUnavailable] == 0 || codes[protocol.CodeInvalidCredentials] == 0 {
		t.Fatalf("flood outcomes %v: want both 401s (hashed) and 503s (queue full)", codes)
	}
	if median(lat) > oneHash/4 {
		t.Fatalf("GET median %v under a LOGIN flood, one hash takes %v: GETs wait behind hashing", median(lat), oneHash)
	}
}
