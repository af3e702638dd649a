package main

// SIGHUP: serve re-reads its configuration (the config file and the
// environment; the command line's flags still win) and applies what can
// change while it runs: the TLS certificate and key, the connection limits
// and the log level. Open connections are not touched. A configuration
// with any error is refused as a whole and the running one stays.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authline/authline/server"
)

// reloadable are the settings a SIGHUP applies to a running server; any
// other changed setting is logged as needing a restart.
var reloadable = map[string]bool{
	"tls-cert": true, "tls-key": true,
	"max-line": true, "max-line-preauth": true,
	"idle-timeout": true, "line-timeout": true, "write-timeout": true,
	"max-conns": true, "max-conns-per-ip": true,
	"log-level": true,
}

// certHolder serves the TLS certificate in force to new handshakes
// (tls.Config.GetCertificate); a reload swaps it.
type certHolder struct {
	cert atomic.Pointer[tls.Certificate]
}

func newCertHolder(certFile, keyFile string) (*certHolder, error) {
	cert, err := loadCertificate(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	h := &certHolder{}
	h.cert.Store(cert)
	return h, nil
}

func (h *certHolder) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}

// loadCertificate loads a PEM certificate and its key and checks that they
// match.
func loadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

func describeCert(c *tls.Certificate) string {
	return fmt.Sprintf("subject %q, serial %s, expires %s", c.Leaf.Subject.String(),
		c.Leaf.SerialNumber.Text(16), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// liveSettings are the reloadable settings, parsed.
type liveSettings struct {
	tlsCert, tlsKey string
	limits          server.Limits
	logLevel        slog.Level
}

// liveSettingsOf parses the reloadable settings from flag values (by name,
// as Value.String() gives them); the limits are mapped as runServe maps
// them (the flags' 0 is the Server's "off").
func liveSettingsOf(values map[string]string) (liveSettings, error) {
	var errs []error
	atoi := func(name string) int {
		v, err := strconv.Atoi(values[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", name, err))
		}
		return off(v)
	}
	dur := func(name string) time.Duration {
		v, err := time.ParseDuration(values[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", name, err))
		}
		return off(v)
	}
	l := liveSettings{
		tlsCert: values["tls-cert"],
		tlsKey:  values["tls-key"],
		limits: server.Limits{
			MaxLineBytes:        atoi("max-line"),
			MaxLineBytesPreAuth: atoi("max-line-preauth"),
			IdleTimeout:         dur("idle-timeout"),
			LineTimeout:         dur("line-timeout"),
			WriteTimeout:        dur("write-timeout"),
			MaxConns:            atoi("max-conns"),
			MaxConnsPerIP:       atoi("max-conns-per-ip"),
		},
	}
	if err := l.logLevel.UnmarshalText([]byte(values["log-level"])); err != nil {
		errs = append(errs, fmt.Errorf("log-level: %v", err))
	}
	return l, errors.Join(errs...)
}

// checkServeSettings runs serve's own checks (serveOptions.check) on a
// new configuration, so that a reload does not accept what a restart would
// refuse.
func checkServeSettings(values map[string]string) error {
	o := &serveOptions{
		listen:            values["listen"],
		tokenAlg:          values["token-alg"],
		tlsCert:           values["tls-cert"],
		tlsKey:            values["tls-key"],
		insecurePlaintext: values["insecure-plaintext"] == "true",
		logFormat:         values["log-format"],
	}
	var errs []error
	var err error
	if o.tokenTTL, err = time.ParseDuration(values["token-ttl"]); err != nil {
		errs = append(errs, fmt.Errorf("token-ttl: %v", err))
	}
	if o.bcryptCost, err = strconv.Atoi(values["bcrypt-cost"]); err != nil {
		errs = append(errs, fmt.Errorf("bcrypt-cost: %v", err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return o.check()
}

// reloader applies new configurations to a running server.
type reloader struct {
	state   *configState      // how the running configuration was resolved
	running map[string]string // the value in force of every setting
	live    liveSettings      // the reloadable settings in force
	log     *slog.Logger
	level   *slog.LevelVar
	certs   *certHolder // nil when serving plaintext
	srv     *server.Server
}

// watchReload reloads the configuration on every SIGHUP until stop is
// called. ctx carries the configuration state of the serve command.
func watchReload(ctx context.Context, log *slog.Logger, level *slog.LevelVar, certs *certHolder, srv *server.Server) (stop func()) {
	st := configFrom(ctx)
	if st == nil {
		return func() {}
	}
	r := &reloader{state: st, running: maps.Clone(st.values), log: log, level: level, certs: certs, srv: srv}
	r.live, _ = liveSettingsOf(st.values) // runServe has checked them
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				r.reload()
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

// reload reads the configuration again, checks all of it, and applies it
// only if all is well.
func (r *reloader) reload() {
	file := r.state.path
	if file == "" {
		file = "none"
	}
	r.log.Info("SIGHUP: reloading the configuration", "file", file)
	live, cert, next, err := r.prepare()
	if err != nil {
		r.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
		return
	}

	for _, name := range sortedNames(next.values) {
		if reloadable[name] || name == configFlag {
			continue
		}
		if old, nv := r.running[name], next.values[name]; old != nv {
			r.log.Warn("configuration change needs a restart; the running value stays in force",
				"setting", name, "running", r.show(name, old), "new", r.show(name, nv))
		}
	}

	var changed []string
	var attrs []any
	note := func(name string, value any) {
		changed = append(changed, name)
		attrs = append(attrs, name, value)
	}
	keepTLS := false
	switch {
	case r.certs == nil && live.tlsCert != "":
		r.log.Warn("configuration change needs a restart; the server listens in plaintext until then", "setting", "tls-cert", "new", live.tlsCert)
		keepTLS = true
	case r.certs != nil && live.tlsCert == "":
		r.log.Warn("configuration change needs a restart; TLS stays on with the running certificate until then", "setting", "tls-cert", "running", r.live.tlsCert)
		keepTLS = true
	case r.certs != nil:
		old := r.certs.cert.Swap(cert)
		if !bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
			note("certificate", describeCert(cert))
		}
		if time.Now().After(cert.Leaf.NotAfter) {
			r.log.Warn("the TLS certificate has expired", "file", live.tlsCert, "expired", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if keepTLS {
		live.tlsCert, live.tlsKey = r.live.tlsCert, r.live.tlsKey
	}
	if live.logLevel != r.live.logLevel {
		r.level.Set(live.logLevel)
	}
	if live.limits != r.live.limits {
		r.srv.SetLimits(live.limits)
	}
	for _, name := range sortedNames(reloadable) {
		if keepTLS && (name == "tls-cert" || name == "tls-key") {
			continue
		}
		nv := next.values[name]
		if name == "log-level" {
			if live.logLevel != r.live.logLevel {
				note(name, strings.ToLower(live.logLevel.String()))
			}
		} else if nv != r.running[name] {
			note(name, r.show(name, nv))
		}
		r.running[name] = nv
	}
	r.live = live
	if len(changed) == 0 {
		r.log.Info("configuration reloaded", "changed", "nothing")
		return
	}
	r.log.Info("configuration reloaded", append([]any{"changed", strings.Join(changed, ",")}, attrs...)...)
}

// show is a setting's value for the log: durations as config print
// writes them (15m, not 15m0s), secrets hidden.
func (r *reloader) show(name, value string) string {
	if f := r.state.flags[name]; f != nil && f.Value.Type() == "duration" {
		if d, err := time.ParseDuration(value); err == nil {
			return shortDuration(d)
		}
	}
	return redactSetting(name, value)
}

// prepare resolves and checks the new configuration and loads its
// certificate, changing nothing.
func (r *reloader) prepare() (liveSettings, *tls.Certificate, *configState, error) {
	next, err := r.state.resolveAgain()
	if err != nil {
		return liveSettings{}, nil, nil, err
	}
	if err := checkServeSettings(next.values); err != nil {
		return liveSettings{}, nil, nil, err
	}
	live, err := liveSettingsOf(next.values)
	if err != nil {
		return liveSettings{}, nil, nil, err
	}
	var cert *tls.Certificate
	if live.tlsCert != "" {
		if cert, err = loadCertificate(live.tlsCert, live.tlsKey); err != nil {
			return liveSettings{}, nil, nil, fmt.Errorf("load TLS certificate %s and key %s: %w", live.tlsCert, live.tlsKey, err)
		}
	}
	return live, cert, next, nil
}
