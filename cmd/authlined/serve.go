package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/server"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/storeopen"
)

type serveOptions struct {
	*globalOptions
	streams Streams

	listen            string
	keyFile           string
	tokenAlg          string
	tokenTTL          time.Duration
	refreshTTL        time.Duration
	syncInterval      time.Duration
	storeTimeout      time.Duration
	bcryptCost        int
	tlsCert, tlsKey   string
	insecurePlaintext bool
	maxLine           int
	maxLinePreAuth    int
	idleTimeout       time.Duration
	lineTimeout       time.Duration
	writeTimeout      time.Duration
	maxConns          int
	maxConnsPerIP     int
	throttle          auth.ThrottlePolicy
	ipRate            auth.IPRateLimit
	hashWorkers       int
	hashQueue         int
	shutdownTimeout   time.Duration
	monitorOptions    // --metrics-listen, --lame-duck-delay (metrics.go)
	logFormat         string
	logLevel          string
}

func newServeCmd(g *globalOptions, streams Streams) *cobra.Command {
	opts := &serveOptions{globalOptions: g, streams: streams}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the authline protocol",
		Long: `Serve the authline protocol on --listen until SIGINT or SIGTERM, then shut
down gracefully: stop accepting, answer requests in flight, send idle
connections a bye event, close the store. With --lame-duck-delay it first
keeps serving that long with /readyz (--metrics-listen) reporting 503, so
that a load balancer drains it.

Listening on an address that is not loopback requires TLS (--tls-cert and
--tls-key) unless --insecure-plaintext is given: passwords and tokens would
cross the network in clear text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", "127.0.0.1:7411", "TCP address to listen on")
	f.StringVar(&opts.keyFile, "key-file", "", "HS256 key file, created with mode 0600 on first start and imported as the store's first signing key (default: beside --db, with extension .key)")
	f.StringVar(&opts.tokenAlg, "token-alg", store.AlgHS256, "algorithm of new tokens: HS256 (a shared secret) or EdDSA (Ed25519: the JWKS command publishes the public keys)")
	f.DurationVar(&opts.tokenTTL, "token-ttl", 15*time.Minute, "lifetime of access tokens")
	f.DurationVar(&opts.refreshTTL, "refresh-ttl", auth.DefaultRefreshTTL, "lifetime of refresh tokens (each REFRESH issues a new one)")
	f.DurationVar(&opts.syncInterval, "sync-interval", auth.DefaultSyncInterval, "how often to read the store's change feed as a fallback (PostgreSQL also wakes servers with LISTEN/NOTIFY); changes made by other processes apply within this")
	f.DurationVar(&opts.storeTimeout, "store-timeout", auth.DefaultStoreTimeout, "longest wait for one store call; past it the request gets 503 (0: no limit)")
	f.IntVar(&opts.bcryptCost, "bcrypt-cost", auth.DefaultBcryptCost, "bcrypt work factor for new password hashes (4-31)")
	f.StringVar(&opts.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serve TLS with --tls-key")
	f.StringVar(&opts.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.BoolVar(&opts.insecurePlaintext, "insecure-plaintext", false, "allow plaintext on a non-loopback address")
	f.IntVar(&opts.maxLine, "max-line", server.DefaultMaxLineBytes, "longest request line in bytes; longer gets 413 and the connection closes (0: no limit)")
	f.IntVar(&opts.maxLinePreAuth, "max-line-preauth", server.DefaultMaxLineBytesPreAuth, "longest request line before the connection has logged in or shown a valid token (0: same as --max-line)")
	f.DurationVar(&opts.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close connections that start no request for this long (0: never)")
	f.DurationVar(&opts.lineTimeout, "line-timeout", server.DefaultLineTimeout, "close connections whose started line is not complete within this long (0: never)")
	f.DurationVar(&opts.writeTimeout, "write-timeout", server.DefaultWriteTimeout, "cut off a client that does not read its responses for this long (0: never)")
	f.IntVar(&opts.maxConns, "max-conns", server.DefaultMaxConns, "most open connections; more get 503 and are closed (0: no limit)")
	f.IntVar(&opts.maxConnsPerIP, "max-conns-per-ip", server.DefaultMaxConnsPerIP, "most open connections from one IP address (0: no limit)")
	f.DurationVar(&opts.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown waits for requests in flight")
	addMonitorFlags(f, &opts.monitorOptions)
	opts.throttle, opts.ipRate = auth.DefaultThrottlePolicy, auth.DefaultIPRateLimit
	f.BoolVar(&opts.throttle.Disabled, "no-login-throttle", false, "switch off failed-login throttling (for load tests only)")
	f.DurationVar(&opts.throttle.Window, "throttle-window", opts.throttle.Window, "failed logins older than this are forgotten")
	f.IntVar(&opts.throttle.PairFree, "throttle-free", opts.throttle.PairFree, "failed logins allowed per username and address before back-off starts")
	f.DurationVar(&opts.throttle.PairMaxDelay, "throttle-max-delay", opts.throttle.PairMaxDelay, "longest back-off per username and address")
	f.IntVar(&opts.throttle.UserFree, "throttle-user-free", opts.throttle.UserFree, "failed logins allowed per username from all addresses before back-off starts")
	f.DurationVar(&opts.throttle.UserMaxDelay, "throttle-user-max-delay", opts.throttle.UserMaxDelay, "longest back-off per username from all addresses")
	f.Float64Var(&opts.ipRate.PerSecond, "ip-auth-rate", opts.ipRate.PerSecond, "LOGIN and REGISTER attempts per second allowed from one address (0: no limit)")
	f.IntVar(&opts.ipRate.Burst, "ip-auth-burst", opts.ipRate.Burst, "burst of LOGIN and REGISTER attempts allowed from one address")
	f.IntVar(&opts.hashWorkers, "hash-workers", runtime.NumCPU(), "bcrypt hashes computed at once")
	f.IntVar(&opts.hashQueue, "hash-queue", auth.DefaultHashQueue, "bcrypt hashes that may wait for a worker; beyond that LOGIN and REGISTER get 503 at once (0: none wait)")
	f.StringVar(&opts.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// off maps a flag's 0 ("no limit") to the Server's negative "off"; the
// Server reads zero as "default".
func off[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// defaultKeyFile puts the key beside an SQLite database: data/authline.db
// gets data/authline.key. A PostgreSQL store has none ("").
func defaultKeyFile(db string) string {
	path, ok := storeopen.SQLitePath(db)
	if !ok {
		return ""
	}
	db = path
	return strings.TrimSuffix(db, filepath.Ext(db)) + ".key"
}

// newLogger returns the server's logger and its level, which a SIGHUP
// reload can change.
func newLogger(streams Streams, format, level string) (*slog.Logger, *slog.LevelVar, error) {
	lvl := new(slog.LevelVar)
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, usageErrorf("--log-level: %v", err)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(streams.ErrOut, ho)), lvl, nil
	case "json":
		return slog.New(slog.NewJSONHandler(streams.ErrOut, ho)), lvl, nil
	}
	return nil, nil, usageErrorf("--log-format must be text or json, not %q", format)
}

// check returns the first setting that serve refuses to start with, as a
// usage error naming its flag. A SIGHUP reload runs it on the new
// configuration too (reload.go), so that a reload does not accept what a
// restart would refuse.
func (o *serveOptions) check() error {
	if o.logFormat != "text" && o.logFormat != "json" {
		return usageErrorf("--log-format must be text or json, not %q", o.logFormat)
	}
	if _, err := auth.ParseAlg(o.tokenAlg); err != nil {
		return usageErrorf("--token-alg: %v", err)
	}
	if o.tokenTTL <= 0 {
		return usageErrorf("--token-ttl must be positive, not %v", o.tokenTTL)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErrorf("--tls-cert and --tls-key go together")
	}
	if o.tlsCert == "" && !o.insecurePlaintext && !isLoopback(o.listen) {
		return usageErrorf("refusing to serve plaintext on %s, which is not a loopback address: passwords and tokens would cross the network in clear; give --tls-cert and --tls-key, or --insecure-plaintext", o.listen)
	}
	// Zero is auth's default, as for auth.New.
	if c := o.bcryptCost; c != 0 && (c < bcrypt.MinCost || c > bcrypt.MaxCost) {
		return usageErrorf("--bcrypt-cost: bcrypt cost %d is outside %d..%d", c, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

func runServe(ctx context.Context, opts *serveOptions) error {
	if err := opts.check(); err != nil {
		return err
	}
	log, logLevel, err := newLogger(opts.streams, opts.logFormat, opts.logLevel)
	if err != nil {
		return err
	}
	alg, _ := auth.ParseAlg(opts.tokenAlg) // check refused a bad one
	useTLS := opts.tlsCert != ""
	var tlsConfig *tls.Config
	var certs *certHolder // swapped by a SIGHUP reload
	if useTLS {
		if certs, err = newCertHolder(opts.tlsCert, opts.tlsKey); err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{GetCertificate: certs.getCertificate, MinVersion: tls.VersionTLS12}
	}

	// The metrics server starts first and stops last (see metrics.go).
	mon, err := startMonitor(opts.metricsListen, log)
	if err != nil {
		return err
	}
	defer mon.stop()

	st, err := storeopen.Open(ctx, opts.db)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	keyFile := opts.keyFile
	if keyFile == "" {
		keyFile = defaultKeyFile(opts.db)
	}
	// The key file still exists for the tokens signed before the keys
	// moved into the store: a store without keys starts with its key.
	// A PostgreSQL store has no "beside the database": there keys live
	// in the store only, unless --key-file names one.
	var key []byte
	if keyFile != "" {
		if key, err = auth.LoadOrCreateKey(keyFile); err != nil {
			return err
		}
	}
	keys, err := auth.PrepareSigningKeys(ctx, st, alg, key, log)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokensFromKeys(alg, keys, auth.DefaultIssuer, opts.tokenTTL, nil)
	if err != nil {
		return err
	}
	if opts.throttle.BaseDelay == 0 {
		opts.throttle.BaseDelay = auth.DefaultThrottlePolicy.BaseDelay
	}
	hashQueue := opts.hashQueue
	if hashQueue == 0 {
		hashQueue = -1 // the flag's 0 means no queue; Config's 0 means the default
	}
	// Hashes run on threads at the lowest priority (server/auth): one Go
	// scheduler slot more than hash workers keeps one for GETs while every
	// worker hashes, and the kernel runs that slot's thread first. An
	// explicit GOMAXPROCS in the environment wins.
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < opts.hashWorkers+1 {
		runtime.GOMAXPROCS(opts.hashWorkers + 1)
	}
	svc, err := auth.New(auth.Config{
		Store:        mon.store(st),
		Observer:     mon.authObserver(),
		Tokens:       tokens,
		BcryptCost:   opts.bcryptCost,
		Throttle:     &opts.throttle,
		IPRateLimit:  &opts.ipRate,
		HashWorkers:  opts.hashWorkers,
		HashQueue:    hashQueue,
		RefreshTTL:   opts.refreshTTL,
		SyncInterval: opts.syncInterval,
		StoreTimeout: off(opts.storeTimeout),
		Logger:       log,
	})
	if err != nil {
		return usageError{err}
	}
	mon.attach(st, svc)

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &server.Server{
		Backend:             svc,
		Logger:              log,
		Version:             version,
		MaxLineBytes:        off(opts.maxLine),
		MaxLineBytesPreAuth: off(opts.maxLinePreAuth),
		IdleTimeout:         off(opts.idleTimeout),
		LineTimeout:         off(opts.lineTimeout),
		WriteTimeout:        off(opts.writeTimeout),
		MaxConns:            off(opts.maxConns),
		MaxConnsPerIP:       off(opts.maxConnsPerIP),
		Observer:            mon.serverObserver(),
	}
	stopReload := watchReload(ctx, log, logLevel, certs, srv) // SIGHUP
	defer stopReload()

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go purge(sigCtx, svc, log)
	// The change feed is followed until the server has stopped: it keeps
	// serving through the lame-duck delay and the requests in flight.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go svc.Run(runCtx)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "tls", useTLS, "db", storeopen.Redact(opts.db), "version", version,
		"token_alg", alg, "kid", tokens.KeyID(), "hash_workers", opts.hashWorkers, "gomaxprocs", runtime.GOMAXPROCS(0))
	mon.serving()
	// After listening, so that the store's answer never delays the start
	// (the count reads the users_role index).
	if n, err := st.CountAdmins(ctx); err == nil && n == 0 {
		log.Warn("the store has no admin; create one with: authlined user add NAME --role admin --db " + storeopen.Redact(opts.db))
	}

	select {
	case err := <-errc:
		return err
	case <-sigCtx.Done():
	}
	if err := lameDuck(mon, log, opts.lameDuckDelay, errc); err != nil {
		return err
	}
	log.Info("shutting down", "timeout", opts.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown timed out; connections were closed", "err", err)
	}
	if err := <-errc; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// purge drops expired revocations, refresh tokens, stale failed-login
// counters and old change-feed entries now and then, so the tables hold
// only what can still matter.
func purge(ctx context.Context, svc *auth.Service, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := svc.Purge(ctx); err != nil && !errors.Is(err, store.ErrUnavailable) {
			log.Warn("purging expired records failed", "err", err)
		} else if n > 0 {
			log.Info("purged expired records", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// isLoopback reports whether every address the listen address can mean is
// a loopback one. An empty host means all interfaces.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
