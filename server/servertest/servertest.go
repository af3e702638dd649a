// Package servertest starts real authline servers for tests: a TCP
// listener on 127.0.0.1:0, a fresh SQLite store in a temporary directory,
// and the auth service, all stopped when the test ends.
package servertest

import (
	"cmp"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/server"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/metrics"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

// Options tune the test server. Zero values take test-friendly defaults.
type Options struct {
	TLSConfig *tls.Config // serve TLS when set
	// ListenAddr is the address to listen on; default 127.0.0.1:0.
	ListenAddr string
	TokenTTL   time.Duration // default 30m
	// TokenAlg is the algorithm of new tokens, store.AlgHS256 (default)
	// or store.AlgEdDSA. As `authlined serve` does, the server imports
	// the key file's key into the store and adds a key of TokenAlg if the
	// store has none.
	TokenAlg   string
	BcryptCost int          // default bcrypt.MinCost, to keep tests fast
	Logger     *slog.Logger // default discards
	Dir        string       // directory for the database and key; default t.TempDir()
	Now        func() time.Time

	// Server fields; zero means the server's defaults, negative no limit.
	MaxLineBytes        int
	MaxLineBytesPreAuth int
	IdleTimeout         time.Duration
	LineTimeout         time.Duration
	WriteTimeout        time.Duration
	MaxConns            int
	MaxConnsPerIP       int

	// Throttle is the failed-login policy; nil means the default policy.
	Throttle *auth.ThrottlePolicy
	// IPRateLimit limits LOGIN/REGISTER per address; nil means OFF here
	// (unlike the server's default), since tests log in from one address.
	IPRateLimit *auth.IPRateLimit
	HashWorkers int
	HashQueue   int
	RefreshTTL  time.Duration
	// SyncInterval is how often the server reads the store's change feed;
	// default 20ms, so tests of changes made outside the service (another
	// process, the store directly) need not wait long.
	SyncInterval time.Duration

	// WrapBackend, if set, wraps the real backend (to inject faults).
	WrapBackend func(server.Backend) server.Backend

	// Metrics, if set, observes the server and the auth service and
	// times the store, as `authlined serve --metrics-listen` does. The
	// test serves it (Metrics.Handler) itself.
	Metrics *metrics.Metrics
}

// Server is a running test server.
type Server struct {
	Addr    string
	Server  *server.Server
	Service *auth.Service
	Store   store.Store
	DBPath  string
	KeyPath string
	Cost    int

	done       chan error
	stopSync   context.CancelFunc
	syncExited chan struct{}
}

// Start starts a server and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{DBPath: filepath.Join(dir, "authline.db"), KeyPath: filepath.Join(dir, "authline.key"), Cost: opts.BcryptCost}
	if s.Cost == 0 {
		s.Cost = bcrypt.MinCost
	}
	ttl := opts.TokenTTL
	if ttl == 0 {
		ttl = 30 * time.Minute
	}
	st, err := sqlite.Open(context.Background(), s.DBPath)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	s.Store = st
	key, err := auth.LoadOrCreateKey(s.KeyPath)
	if err != nil {
		st.Close()
		t.Fatalf("key: %v", err)
	}
	alg := opts.TokenAlg
	if alg == "" {
		alg = store.AlgHS256
	}
	keys, err := auth.PrepareSigningKeys(context.Background(), st, alg, key, opts.Logger)
	if err != nil {
		st.Close()
		t.Fatalf("signing keys: %v", err)
	}
	tokens, err := auth.NewTokensFromKeys(alg, keys, auth.DefaultIssuer, ttl, opts.Now)
	if err != nil {
		st.Close()
		t.Fatalf("tokens: %v", err)
	}
	ipLimit := opts.IPRateLimit
	if ipLimit == nil {
		ipLimit = &auth.IPRateLimit{}
	}
	var svcStore store.Store = st
	var authObs auth.Observer
	var srvObs server.Observer
	if opts.Metrics != nil {
		svcStore, authObs, srvObs = opts.Metrics.WrapStore(st), opts.Metrics, opts.Metrics
	}
	s.Service, err = auth.New(auth.Config{
		Store:        svcStore,
		Observer:     authObs,
		Tokens:       tokens,
		BcryptCost:   s.Cost,
		Throttle:     opts.Throttle,
		IPRateLimit:  ipLimit,
		HashWorkers:  opts.HashWorkers,
		HashQueue:    opts.HashQueue,
		Now:          opts.Now,
		RefreshTTL:   opts.RefreshTTL,
		SyncInterval: cmp.Or(opts.SyncInterval, 20*time.Millisecond),
		Logger:       opts.Logger,
	})
	if err != nil {
		st.Close()
		t.Fatalf("auth: %v", err)
	}
	if opts.Metrics != nil {
		opts.Metrics.WatchHashPool(s.Service.HashPoolStats)
	}
	var backend server.Backend = s.Service
	if opts.WrapBackend != nil {
		backend = opts.WrapBackend(backend)
	}
	s.Server = &server.Server{
		Backend:             backend,
		Logger:              opts.Logger,
		Version:             "0.0.0-test",
		MaxLineBytes:        opts.MaxLineBytes,
		MaxLineBytesPreAuth: opts.MaxLineBytesPreAuth,
		IdleTimeout:         opts.IdleTimeout,
		LineTimeout:         opts.LineTimeout,
		WriteTimeout:        opts.WriteTimeout,
		MaxConns:            opts.MaxConns,
		MaxConnsPerIP:       opts.MaxConnsPerIP,
		Observer:            srvObs,
	}
	ln, err := net.Listen("tcp", cmp.Or(opts.ListenAddr, "127.0.0.1:0"))
	if err != nil {
		st.Close()
		t.Fatalf("listen: %v", err)
	}
	if opts.TLSConfig != nil {
		ln = tls.NewListener(ln, opts.TLSConfig)
	}
	s.Addr = ln.Addr().String()
	s.done = make(chan error, 1)
	go func() { s.done <- s.Server.Serve(ln) }()
	var syncCtx context.Context
	syncCtx, s.stopSync = context.WithCancel(context.Background())
	s.syncExited = make(chan struct{})
	go func() { defer close(s.syncExited); s.Service.Run(syncCtx) }()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down gracefully and closes the store. It is safe
// to call more than once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Server.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-s.done; err != server.ErrServerClosed {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	s.done = nil
	s.stopSync()
	<-s.syncExited
	if err := s.Store.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}

// AddUser creates a user directly in the store, as `authlined user add`
// does; role is "user" or "admin".
func (s *Server) AddUser(t testing.TB, username, password, role string) {
	t.Helper()
	hash, err := auth.HashPassword(password, s.Cost)
	if err != nil {
		t.Fatalf("hash password: %v", err)
	}
	u := store.User{Username: username, PasswordHash: hash, Role: role, CreatedAt: time.Now(), Generation: auth.NewGeneration()}
	if err := s.Store.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("add user %s: %v", username, err)
	}
}
