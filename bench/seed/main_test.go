package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

func TestSeed(t *testing.T) {
	for _, method := range []string{"sql", "api"} {
		t.Run(method, func(t *testing.T) {
			ctx := context.Background()
			db := filepath.Join(t.TempDir(), "authline.db")
			var out bytes.Buffer
			if err := run(ctx, options{DB: db, Users: 120, Prefix: "seed-", Method: method, Cost: 4}, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "seeded 120 users") || !strings.Contains(out.String(), "holds 121 users") {
				t.Errorf("output = %q", out.String())
			}

			st, err := sqlite.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if n, err := st.CountUsers(ctx); err != nil || n != 121 {
				t.Fatalf("CountUsers = %d, %v; want 121", n, err)
			}
			if n, err := st.CountAdmins(ctx); err != nil || n != 1 {
				t.Errorf("CountAdmins = %d, %v; want 1", n, err)
			}
			first, err := st.GetUser(ctx, "seed-000000")
			if err != nil {
				t.Fatal(err)
			}
			// The last user is a full copy of the first but for the name,
			// readable through the store.
			last, err := st.GetUser(ctx, "seed-000119")
			if err != nil {
				t.Fatal(err)
			}
			if last.Role != store.RoleUser || last.Disabled || last.Generation != 1 || !last.LastLogin.IsZero() ||
				!bytes.Equal(last.PasswordHash, first.PasswordHash) || !last.CreatedAt.Equal(first.CreatedAt) {
				t.Errorf("last user = %+v\nfirst user = %+v", last, first)
			}
			if !bytes.HasPrefix(last.PasswordHash, []byte("$2a$04$")) {
				t.Errorf("hash %q is not bcrypt at cost 4", last.PasswordHash)
			}
			if _, err := st.GetUser(ctx, "seed-000120"); err == nil {
				t.Error("seed-000120 exists; want 120 users, 000000 to 000119")
			}
		})
	}
}

func TestSeedRejects(t *testing.T) {
	db := filepath.Join(t.TempDir(), "authline.db")
	for _, o := range []options{
		{Users: 10, Prefix: "seed-", Method: "sql", Cost: 4},
		{DB: db, Users: 0, Prefix: "seed-", Method: "sql", Cost: 4},
		{DB: db, Users: 10, Prefix: "seed-", Method: "csv", Cost: 4},
		{DB: db, Users: 10, Prefix: "Seed-", Method: "sql", Cost: 4},
	} {
		if err := run(context.Background(), o, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%+v) succeeded, want an error", o)
		}
	}
	// Seeding twice with the same prefix: the names are taken.
	o := options{DB: db, Users: 3, Prefix: "seed-", Method: "sql", Cost: 4}
	if err := run(context.Background(), o, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, &bytes.Buffer{}); err == nil {
		t.Error("seeding the same names twice succeeded")
	}
}
