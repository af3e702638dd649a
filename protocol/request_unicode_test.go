package protocol_test

import (
	"reflect"
	"testing"

	"github.com/authline/authline/protocol"
)

// The inline form splits on runs of spaces and tabs only (as the comment
// on parseInline and PROTOCOL.md say). strings.Fields also splits on every
// other Unicode space (U+00A0, U+2003, U+3000, U+0085, \v, \f...), so a
// password or token that contains one is cut in two, and "LOGIN alice
// my<NBSP>token" even turns into a token-mode login with password "my".
func TestInlineSplitsOnSpacesAndTabsOnly(t *testing.T) {
	for _, tc := range []struct {
		line string
		want protocol.Request
	}{
		{"REGISTER alice pass\u00a0word", protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "pass\u00a0word", Inline: true}},
		{"LOGIN alice my\u00a0token", protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "my\u00a0token", Mode: "session", Inline: true}},
		{"LOGIN alice p\u3000w", protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "p\u3000w", Mode: "session", Inline: true}},
		{"REGISTER alice pass\u2003word", protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "pass\u2003word", Inline: true}},
		{"REGISTER alice pass\u0085word", protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "pass\u0085word", Inline: true}},
		{"REGISTER alice pass\vword", protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "pass\vword", Inline: true}},
	} {
		req, perr := protocol.ParseRequest([]byte(tc.line))
		if perr != nil {
			t.Errorf("ParseRequest(%q): %v", tc.line, perr)
			continue
		}
		if !reflect.DeepEqual(req, tc.want) {
			t.Errorf("ParseRequest(%q) = %+v, want %+v", tc.line, req, tc.want)
		}
	}
}

// Command names and LOGIN's mode are case-insensitive in ASCII. The code
// uses Unicode case folding (strings.EqualFold, strings.ToLower), under
// which U+017F LATIN SMALL LETTER LONG S equals "s" and U+212A KELVIN SIGN
// equals "k": "REGIſTER" is taken as REGISTER and "to\u212Aen" as token.
func TestCommandAndModeFoldASCIIOnly(t *testing.T) {
	for _, line := range []string{
		"REGI\u017fTER alice s3cretpass",
		`{"cmd":"regi\u017fter","username":"alice","password":"s3cretpass"}`,
	} {
		_, perr := protocol.ParseRequest([]byte(line))
		if perr == nil || perr.Code != protocol.CodeUnknownCommand {
			t.Errorf("ParseRequest(%q) error = %v, want unknown_command", line, perr)
		}
	}
	for _, line := range []string{
		"LOGIN alice s3cretpass to\u212Aen",
		`{"cmd":"LOGIN","username":"alice","password":"s3cretpass","mode":"TO\u212AEN"}`,
		"LOGIN alice s3cretpass \u017fession",
	} {
		req, perr := protocol.ParseRequest([]byte(line))
		if perr == nil || perr.Code != protocol.CodeBadRequest {
			t.Errorf("ParseRequest(%q) = %+v, %v; want bad_request (mode)", line, req, perr)
		}
	}
}
