package auth

import (
	_ "embed"
	"slices"
	"strings"
	"sync"

	"golang.org/x/text/unicode/norm"

	"github.com/authline/authline/protocol"
)

// commonPasswordsText is the common-password blocklist (NIST SP 800-63B
// 5.1.1.2): one entry a line, lower-case, NFKC-normalised, 8 to 72 bytes,
// sorted byte-wise and without duplicates. blocklist/SOURCES.md says where
// it comes from and how it was made.
//
//go:embed blocklist/common-passwords.txt
var commonPasswordsText string

// Byte lengths of the shortest and longest possible entries: the list keeps
// only passwords that the length rule (MinPassword, MaxPassword) would let
// through, so anything outside this range is not in it.
const (
	commonPasswordMinLen = 8
	commonPasswordMaxLen = 72
)

// commonPasswords is the blocklist as a sorted slice searched by binary
// search. Its strings share the embedded text's read-only memory, so it
// costs only the slice of string headers (about 36 KB) where a
// map[string]struct{} costs about 110 KB; a lookup takes about 45 ns against
// a map's 10 ns, nothing next to the bcrypt hash that follows it.
var commonPasswords = sync.OnceValue(func() []string {
	return parseCommonPasswords(commonPasswordsText)
})

// parseCommonPasswords splits the list's text into a sorted slice of its
// entries.
func parseCommonPasswords(text string) []string {
	list := make([]string, 0, strings.Count(text, "\n")+1)
	for line := range strings.Lines(text) {
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			list = append(list, line)
		}
	}
	// The file is kept sorted (the tests check it); this is only a guard
	// against a hand edit that breaks the order, which would make the
	// binary search miss entries.
	if !slices.IsSorted(list) {
		slices.Sort(list)
		list = slices.Compact(list)
	}
	return list
}

// CommonPassword reports whether p is in the embedded list of common
// (leaked) passwords. The match is on the NFKC-normalised password and
// ignores case.
func CommonPassword(p string) bool {
	key := strings.ToLower(norm.NFKC.String(p))
	if len(key) < commonPasswordMinLen || len(key) > commonPasswordMaxLen {
		return false
	}
	_, found := slices.BinarySearch(commonPasswords(), key)
	return found
}

// CheckPasswordPolicy applies the rules on a new password beyond its length:
// it must not be, or contain, the username, and must not be a common
// password. The caller has already normalised the password with
// NormalizePassword (which checks the length) and the username with
// NormalizeUsername. The error is a *protocol.Error with CodeBadRequest
// whose message names the rule that failed.
func CheckPasswordPolicy(username, password string) error {
	lower := strings.ToLower(password)
	if u := lowerASCII(username); u != "" {
		if lower == u {
			return protocol.Errorf(protocol.CodeBadRequest, "password must not be the same as the username")
		}
		if strings.Contains(lower, u) {
			return protocol.Errorf(protocol.CodeBadRequest, "password must not contain the username")
		}
	}
	if CommonPassword(password) {
		return protocol.Errorf(protocol.CodeBadRequest,
			"password is too common: it appears in lists of leaked passwords")
	}
	return nil
}
