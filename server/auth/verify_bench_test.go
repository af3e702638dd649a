package auth

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/authline/authline/server"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

// BenchmarkVerifyToken measures the whole token check of a request in the
// steady state: JWT parse and signature, revocation and user state, all
// from the cache, no store round-trip.
func BenchmarkVerifyToken(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tokens, err := NewTokens(make([]byte, 32), "", time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Config{Store: st, Tokens: tokens, BcryptCost: 4})
	if err != nil {
		b.Fatal(err)
	}
	hash, _ := HashPassword("kitten-orbit-1", 4)
	if err := st.CreateUser(ctx, store.User{Username: "bench", PasswordHash: hash, Role: "user", CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	id, err := svc.Login(ctx, server.Peer{Addr: netip.MustParseAddrPort("127.0.0.1:1")}, "bench", "kitten-orbit-1")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := svc.IssueToken(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	peer := server.Peer{}
	if _, err := svc.VerifyToken(ctx, peer, tok.Token); err != nil { // warm the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.VerifyToken(ctx, peer, tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}
