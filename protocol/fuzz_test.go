package protocol_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authline/authline/protocol"
)

// parseSeeds are the in-code seeds of FuzzParseRequest; more live in
// testdata/fuzz/FuzzParseRequest.
var parseSeeds = []string{
	// Every command, JSON form.
	`{"id":1,"cmd":"REGISTER","username":"alice","password":"s3cretpass"}`,
	`{"id":"l","cmd":"LOGIN","username":"alice","password":"s3cretpass","mode":"token"}`,
	`{"cmd":"login","username":"alice","password":"s3cretpass"}`,
	`{"id":-2.5e1,"cmd":"GET","resource":"ADMIN","token":"eyJ.eyJ.sig"}`,
	`{"cmd":"LOGOUT","token":"t"}`,
	`{"cmd":"WHOAMI"}`,
	`{"id":null,"cmd":"PING"}`,
	`{"cmd":"QUIT"}`,
	// Every command, inline form.
	"REGISTER alice s3cretpass",
	"LOGIN alice s3cretpass token",
	"login alice s3cretpass",
	"GET protected eyJ.eyJ.sig",
	"LOGOUT",
	"WHOAMI t",
	"PING",
	"quit",
	// Bad inputs.
	``,
	` `,
	`{`,
	`{}`,
	`{"id":true,"cmd":"PING"}`,
	`{"id":{},"cmd":"PING"}`,
	`{"id":[1],"cmd":5}`,
	`{"id":"x","cmd":"REGISTER","username":5}`,
	`{"cmd":"PING"}{"cmd":"PING"}`,
	`{"cmd":"PING"} trailing`,
	"{\"cmd\":\"PING\",\"username\":\"\xff\"}",
	"PING \xfe",
	`[1,2]`,
	`"str"`,
	"LOGIN alice pw cookie",
	"GET",
	"REGI\u017fTER alice pw",
	"LOGIN alice pass\u00a0word",
	strings.Repeat("Q", 40),
	`{"cmd":"GET","resource":"\u0130"}`,
}

func isCode(c protocol.Code, codes ...protocol.Code) bool { return slices.Contains(codes, c) }

// validWireID reports whether id is what a response may echo: a JSON
// string or number.
func validWireID(id json.RawMessage) bool {
	if !json.Valid(id) {
		return false
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return false
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		req, perr := protocol.ParseRequest(line)
		if !bytes.Equal(line, orig) {
			t.Fatalf("ParseRequest modified its input")
		}
		// A Parser that has seen other tokens (and this one) parses the
		// line exactly as ParseRequest does.
		var p protocol.Parser
		p.Parse([]byte("GET protected some.other.token"))
		for range 2 {
			preq, pperr := p.Parse(line)
			if !reflect.DeepEqual(preq, req) || !reflect.DeepEqual(pperr, perr) {
				t.Fatalf("Parser.Parse(%q) = %+v, %v; ParseRequest = %+v, %v", line, preq, pperr, req, perr)
			}
		}
		if req.ID != nil && !validWireID(req.ID) {
			t.Fatalf("ParseRequest(%q).ID = %q: not a JSON string or number", line, req.ID)
		}
		if req.Inline && req.ID != nil {
			t.Fatalf("inline request with an id: %q", line)
		}
		if perr != nil {
			if !isCode(perr.Code, protocol.CodeBadRequest, protocol.CodeUnknownCommand, protocol.CodeNotFound) {
				t.Fatalf("ParseRequest(%q) code %s, want bad_request, unknown_command or not_found", line, perr.Code)
			}
			if perr.Message == "" || !utf8.ValidString(perr.Message) {
				t.Fatalf("ParseRequest(%q) message %q: empty or invalid UTF-8", line, perr.Message)
			}
			if len(perr.Message) > 256 { // nothing echoes a long input back
				t.Fatalf("ParseRequest(%q) message is %d bytes long: %q", line, len(perr.Message), perr.Message)
			}
			if !utf8.Valid(line) && (perr.Code != protocol.CodeBadRequest || req.ID != nil) {
				t.Fatalf("ParseRequest(%q) on invalid UTF-8: %v, id %q", line, perr, req.ID)
			}
			return
		}

		// Success.
		if !utf8.Valid(line) {
			t.Fatalf("ParseRequest accepted invalid UTF-8 %q", line)
		}
		if !slices.Contains(protocol.Commands, req.Cmd) {
			t.Fatalf("ParseRequest(%q).Cmd = %q, not in Commands", line, req.Cmd)
		}
		if isJSON := len(line) > 0 && line[0] == '{'; req.Inline == isJSON {
			t.Fatalf("ParseRequest(%q).Inline = %v", line, req.Inline)
		}
		for _, s := range []string{req.Username, req.Password, req.Mode, req.Resource, req.Token} {
			if !utf8.ValidString(s) {
				t.Fatalf("ParseRequest(%q) returned invalid UTF-8 %q", line, s)
			}
		}
		switch req.Cmd {
		case protocol.CmdRegister, protocol.CmdLogin:
			if req.Username == "" || req.Password == "" {
				t.Fatalf("ParseRequest(%q) = %+v without username or password", line, req)
			}
			if req.Cmd == protocol.CmdLogin && req.Mode != protocol.ModeSession && req.Mode != protocol.ModeToken {
				t.Fatalf("ParseRequest(%q).Mode = %q", line, req.Mode)
			}
		case protocol.CmdGet:
			if req.Resource == "" || req.Resource != strings.ToLower(req.Resource) {
				t.Fatalf("ParseRequest(%q).Resource = %q", line, req.Resource)
			}
		}
		if req.Inline {
			for _, s := range []string{req.Username, req.Password, req.Mode, req.Resource, req.Token} {
				if strings.ContainsAny(s, " \t") {
					t.Fatalf("inline ParseRequest(%q) returned an argument with a blank: %q", line, s)
				}
			}
		}

		// Normalising is idempotent: the request written back as JSON (and,
		// for inline requests, as inline) parses to itself.
		again, perr := protocol.ParseRequest(toJSON(t, &req))
		if perr != nil {
			t.Fatalf("re-parsing %q as %s: %v", line, toJSON(t, &req), perr)
		}
		want := req
		want.Inline = false
		if !sameRequest(again, want) {
			t.Fatalf("re-parse of %q:\n got %+v\nwant %+v", line, again, want)
		}
		if req.Inline {
			again, perr := protocol.ParseRequest([]byte(toInline(&req)))
			if perr != nil || !sameRequest(again, req) {
				t.Fatalf("inline re-parse of %q as %q: %+v, %v", line, toInline(&req), again, perr)
			}
		}
	})
}

func sameRequest(a, b protocol.Request) bool {
	return bytes.Equal(a.ID, b.ID) && a.Cmd == b.Cmd && a.Username == b.Username && a.Password == b.Password &&
		a.Mode == b.Mode && a.Resource == b.Resource && a.Token == b.Token && a.Inline == b.Inline
}

// toJSON writes a request in the JSON form with encoding/json.
func toJSON(t *testing.T, r *protocol.Request) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('{')
	if r.ID != nil {
		b.WriteString(`"id":`)
		b.Write(r.ID)
		b.WriteByte(',')
	}
	fields := []struct{ k, v string }{
		{"cmd", r.Cmd}, {"username", r.Username}, {"password", r.Password},
		{"mode", r.Mode}, {"resource", r.Resource}, {"token", r.Token},
		{"refresh_token", r.RefreshToken}, {"old_password", r.OldPassword},
		{"new_password", r.NewPassword}, {"role", r.Role}, {"after", r.After},
	}
	fmt.Fprintf(&b, `"all":%t,"limit":%d,`, r.All, r.Limit)
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := json.Marshal(f.v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(`"` + f.k + `":`)
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// toInline writes an inline request back in the inline form.
func toInline(r *protocol.Request) string {
	parts := []string{r.Cmd}
	switch r.Cmd {
	case protocol.CmdRegister:
		parts = append(parts, r.Username, r.Password)
	case protocol.CmdLogin:
		parts = append(parts, r.Username, r.Password, r.Mode)
	case protocol.CmdGet:
		parts = append(parts, r.Resource)
	case protocol.CmdLogout:
		if r.All {
			parts = append(parts, "ALL")
		}
	case protocol.CmdRefresh:
		parts = append(parts, r.RefreshToken)
	case protocol.CmdPasswd:
		parts = append(parts, r.OldPassword, r.NewPassword)
	case protocol.CmdUsers:
		parts = append(parts, strconv.Itoa(r.Limit))
		if r.After != "" {
			parts = append(parts, r.After)
		}
	case protocol.CmdSetRole:
		parts = append(parts, r.Username, r.Role)
	case protocol.CmdUser, protocol.CmdDisable, protocol.CmdEnable, protocol.CmdDelete, protocol.CmdUnlock, protocol.CmdRevoke:
		parts = append(parts, r.Username)
	}
	if r.Token != "" {
		parts = append(parts, r.Token)
	}
	return strings.Join(parts, " ")
}

func FuzzAppendString(f *testing.F) {
	for _, s := range appendStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := protocol.AppendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: invalid JSON", s, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: invalid UTF-8", s, out)
		}
		if bytes.ContainsAny(out, "\r\n\u2028\u2029") {
			t.Fatalf("AppendString(%q) = %q: raw line terminator", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) {
			if got != s {
				t.Fatalf("AppendString(%q) round-trips to %q", s, got)
			}
		} else {
			ref, _ := json.Marshal(s)
			var want string
			if err := json.Unmarshal(ref, &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, got, want)
			}
		}

		// Any message still makes one response line.
		resp := protocol.Response{Status: 200, Message: s, Data: &protocol.WhoAmIData{Username: s, Role: s, Auth: s}}
		line := protocol.AppendResponse(nil, &resp)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("response for %q is not one line: %q", s, line)
		}
		var m protocol.Message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("response for %q: %v", s, err)
		}
		if m.Message != got {
			t.Fatalf("response message %q, want %q", m.Message, got)
		}
	})
}
