package auth

import (
	"golang.org/x/text/unicode/norm"

	"github.com/authline/authline/protocol"
)

// Limits on accounts.
const (
	MinUsername = 3
	MaxUsername = 32
	MinPassword = 8
	// MaxPassword is bcrypt's input limit: it ignores every byte after the
	// 72nd, so longer passwords are refused rather than truncated.
	MaxPassword = 72
)

// NormalizeUsername lower-cases a username and checks it: 3 to 32 of
// [a-z0-9._-], starting with a letter or digit.
func NormalizeUsername(name string) (string, error) {
	u := lowerASCII(name)
	if !validUsername(u) {
		return "", protocol.Errorf(protocol.CodeBadRequest,
			"username must be %d to %d characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
			MinUsername, MaxUsername)
	}
	return u, nil
}

// lowerASCII lower-cases ASCII letters only: Unicode rules would map the
// Kelvin sign to "k" and so give one account two spellings.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func validUsername(u string) bool {
	if len(u) < MinUsername || len(u) > MaxUsername {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// errPasswordTooLong: bcrypt compares only the first 72 bytes, so a longer
// password is refused rather than truncated, at REGISTER and at LOGIN.
var errPasswordTooLong = protocol.Errorf(protocol.CodeBadRequest,
	"password is longer than %d bytes (after Unicode NFKC normalisation); bcrypt cannot use more", MaxPassword)

// NormalizePassword applies NFKC (NIST SP 800-63B 5.1.1.2), so the same
// password typed with composed or decomposed characters matches, and then
// checks the length in bytes.
func NormalizePassword(password string) ([]byte, error) {
	p := norm.NFKC.String(password)
	if len(p) > MaxPassword {
		return nil, errPasswordTooLong
	}
	if len(p) < MinPassword {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "password must be at least %d bytes", MinPassword)
	}
	return []byte(p), nil
}
