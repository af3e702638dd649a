package auth_test

import (
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/server/auth"
)

// BenchmarkBcryptCost12 is the cost of one bcrypt comparison at the
// server's default cost, 12: what a successful LOGIN spends. With it,
// bench/run.sh computes the machine's bcrypt limit, cores / seconds per
// hash, against which LOGIN throughput is judged.
func BenchmarkBcryptCost12(b *testing.B) {
	const password = "bench password 1"
	hash, err := auth.HashPassword(password, 12)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
			b.Fatal(err)
		}
	}
}
