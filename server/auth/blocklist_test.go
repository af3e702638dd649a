package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/authline/authline/protocol"
)

func TestCommonPassword(t *testing.T) {
	tests := []struct {
		name string
		p    string
		want bool
	}{
		{"listed", "password", true},
		{"listed digits", "12345678", true},
		{"listed with digit", "password1", true},
		{"listed qwertyuiop", "qwertyuiop", true},
		{"upper case", "PASSWORD", true},
		{"capitalised", "Password1", true},
		{"mixed case", "PaSsW0rD", true},
		{"fullwidth folds under NFKC", "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44", true},
		{"strong", "Zq7#mV2!pL9$wR4x-kT", false},
		{"passphrase", "correct horse battery staple", false},
		{"listed word with suffix", "password-is-long-enough-x", false},
		{"shorter than any entry", "pass", false},
		{"empty", "", false},
		{"longer than any entry", strings.Repeat("a", 73), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CommonPassword(tt.p); got != tt.want {
				t.Errorf("CommonPassword(%q) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestCommonPasswordRandom(t *testing.T) {
	for range 100 {
		p := base64.RawURLEncoding.EncodeToString(randomBytes(t, 18))
		if CommonPassword(p) {
			t.Errorf("CommonPassword(%q) = true for a random password", p)
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommonPasswordEveryEntry looks up every entry of the list as it is and
// in upper case.
func TestCommonPasswordEveryEntry(t *testing.T) {
	for _, p := range commonPasswords() {
		if !CommonPassword(p) {
			t.Errorf("CommonPassword(%q) = false for a listed entry", p)
		}
		if up := strings.ToUpper(p); !CommonPassword(up) {
			t.Errorf("CommonPassword(%q) = false for an upper-case listed entry", up)
		}
	}
}

func TestCheckPasswordPolicy(t *testing.T) {
	const (
		msgSame     = "password must not be the same as the username"
		msgContains = "password must not contain the username"
		msgCommon   = "password is too common: it appears in lists of leaked passwords"
	)
	tests := []struct {
		name     string
		username string
		password string
		msg      string // "" when the password is accepted
	}{
		{"strong", "alice", "Zq7#mV2!pL9$wR4x-kT", ""},
		{"equal", "alicesmith", "alicesmith", msgSame},
		{"equal other case", "alicesmith", "AliceSmith", msgSame},
		{"contains", "alice", "xxalice99", msgContains},
		{"contains other case", "alice", "xxALICE99", msgContains},
		{"prefix", "alice", "alice2024!x", msgContains},
		{"contains another username", "bob", "xxalice99", ""},
		{"common", "alice", "password", msgCommon},
		{"common other case", "alice", "PASSWORD", msgCommon},
		{"common capitalised", "bob", "Password1", msgCommon},
		// A common password that also contains the username fails on the
		// username rule first.
		{"common and contains", "pass", "password", msgContains},
		// No username must not turn the containment rule into "refuse all".
		{"empty username", "", "Zq7#mV2!pL9$wR4x-kT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPasswordPolicy(tt.username, tt.password)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("CheckPasswordPolicy(%q, %q) = %v, want nil", tt.username, tt.password, err)
				}
				return
			}
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("CheckPasswordPolicy(%q, %q) = %v (%T), want a *protocol.Error", tt.username, tt.password, err, err)
			}
			if perr.Code != protocol.CodeBadRequest || perr.Message != tt.msg {
				t.Errorf("CheckPasswordPolicy(%q, %q) = %s %q, want %s %q",
					tt.username, tt.password, perr.Code, perr.Message, protocol.CodeBadRequest, tt.msg)
			}
		})
	}
}

// TestCheckPasswordPolicyAfterNormalize runs the policy the way callers do:
// on the output of NormalizePassword.
func TestCheckPasswordPolicyAfterNormalize(t *testing.T) {
	p, err := NormalizePassword("\uff30\uff41\uff53\uff53\uff57\uff4f\uff52\uff44") // fullwidth "Password"
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPasswordPolicy("alice", string(p)); err == nil {
		t.Errorf("CheckPasswordPolicy accepted fullwidth %q", p)
	}
}

// TestCommonPasswordList checks the embedded file itself: non-empty, one
// entry a line, sorted byte-wise without duplicates, every entry in the
// stored form (trimmed, NFKC, lower-case) and within the lengths that the
// length rule lets through.
func TestCommonPasswordList(t *testing.T) {
	text := commonPasswordsText
	if text == "" {
		t.Fatal("embedded common-password list is empty")
	}
	if strings.Contains(text, "\r") {
		t.Error("list has CR characters; want LF line endings")
	}
	if !strings.HasSuffix(text, "\n") {
		t.Error("list does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 1000 {
		t.Errorf("list has %d entries, want at least 1000", len(lines))
	}
	for i, p := range lines {
		if i > 0 && lines[i-1] >= p {
			t.Errorf("line %d: %q after %q: not sorted or duplicated", i+1, p, lines[i-1])
		}
		if len(p) < commonPasswordMinLen || len(p) > commonPasswordMaxLen {
			t.Errorf("line %d: %q is %d bytes, want %d to %d", i+1, p, len(p), commonPasswordMinLen, commonPasswordMaxLen)
		}
		if want := strings.ToLower(norm.NFKC.String(strings.TrimSpace(p))); p != want {
			t.Errorf("line %d: %q is not in stored form %q", i+1, p, want)
		}
	}
	if got := commonPasswords(); len(got) != len(lines) {
		t.Errorf("loaded %d entries from %d lines", len(got), len(lines))
	}
	// The list leaves out what the length rule refuses anyway; if that rule
	// admits shorter or longer passwords, the list must be rebuilt to cover
	// them (see blocklist/SOURCES.md).
	if MinPassword < commonPasswordMinLen || MaxPassword > commonPasswordMaxLen {
		t.Errorf("password lengths %d..%d reach outside the list's %d..%d: rebuild the list",
			MinPassword, MaxPassword, commonPasswordMinLen, commonPasswordMaxLen)
	}
}

// BenchmarkCommonPassword measures a lookup (NFKC, lower-casing and the
// binary search) of a listed and of an unlisted password.
func BenchmarkCommonPassword(b *testing.B) {
	commonPasswords() // load outside the timing
	for _, bc := range []struct{ name, p string }{
		{"hit", "Password1"},
		{"miss", "Zq7#mV2!pL9$wR4x-kT"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				CommonPassword(bc.p)
			}
		})
	}
}

// BenchmarkCommonPasswordLoad measures building the lookup slice from the
// embedded text, which happens once per process.
func BenchmarkCommonPasswordLoad(b *testing.B) {
	for b.Loop() {
		parseCommonPasswords(commonPasswordsText)
	}
}
