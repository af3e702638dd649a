package protocol_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/authline/authline/protocol"
)

// oneLine checks that b is exactly one JSON line ending in "\n" and returns
// it decoded.
func oneLine(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("line does not end in a newline: %q", b)
	}
	body := b[:len(b)-1]
	if bytes.ContainsAny(body, "\r\n") {
		t.Fatalf("line has an inner line break: %q", b)
	}
	if !utf8.Valid(b) {
		t.Fatalf("line is not valid UTF-8: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", body, err)
	}
	return m
}

// asMap returns v's encoding/json encoding decoded into a map, the
// reference each hand-written encoder is compared with.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var expiry = time.Date(2026, 11, 23, 12, 47, 10, 0, time.UTC)

func TestAppendResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp protocol.Response
		want string
	}{
		{
			name: "pong",
			resp: protocol.Response{Status: 200, Message: "pong"},
			want: `{"ok":true,"status":200,"message":"pong"}`,
		},
		{
			name: "string id",
			resp: protocol.Response{ID: json.RawMessage(`"a1"`), Status: 200, Message: "pong"},
			want: `{"id":"a1","ok":true,"status":200,"message":"pong"}`,
		},
		{
			name: "number id verbatim",
			resp: protocol.Response{ID: json.RawMessage(`-1.5e3`), Status: 200, Message: "logged out"},
			want: `{"id":-1.5e3,"ok":true,"status":200,"message":"logged out"}`,
		},
		{
			name: "empty id is omitted",
			resp: protocol.Response{ID: json.RawMessage{}, Status: 200, Message: "pong"},
			want: `{"ok":true,"status":200,"message":"pong"}`,
		},
		{
			name: "error",
			resp: protocol.ErrorResponse(json.RawMessage(`7`), protocol.Errorf(protocol.CodeConflict, "username is already taken")),
			want: `{"id":7,"ok":false,"status":409,"error":"conflict","message":"username is already taken"}`,
		},
		{
			name: "error without id",
			resp: protocol.ErrorResponse(nil, protocol.Errorf(protocol.CodeLineTooLong, "request line longer than %d bytes", 16384)),
			want: `{"ok":false,"status":413,"error":"line_too_long","message":"request line longer than 16384 bytes"}`,
		},
		{
			name: "error message escaped",
			resp: protocol.ErrorResponse(nil, protocol.Errorf(protocol.CodeUnknownCommand, "unknown command %q", `"str"`)),
			want: `{"ok":false,"status":400,"error":"unknown_command","message":"unknown command \"\\\"str\\\"\""}`,
		},
		{
			name: "register",
			resp: protocol.Response{Status: 201, Message: "user created", Data: &protocol.UserData{Username: "alice", Role: "user"}},
			want: `{"ok":true,"status":201,"message":"user created","data":{"username":"alice","role":"user"}}`,
		},
		{
			name: "login session",
			resp: protocol.Response{Status: 200, Message: "logged in", Data: &protocol.LoginData{Username: "alice", Role: "user", Mode: "session"}},
			want: `{"ok":true,"status":200,"message":"logged in","data":{"username":"alice","role":"user","mode":"session"}}`,
		},
		{
			name: "login token",
			resp: protocol.Response{ID: json.RawMessage(`"t"`), Status: 200, Message: "token issued", Data: &protocol.LoginData{
				Username: "alice", Role: "user", Mode: "token", Token: "h.p.s", TokenType: "Bearer", ExpiresAt: expiry, ExpiresIn: 1800,
			}},
			want: `{"id":"t","ok":true,"status":200,"message":"token issued","data":{"username":"alice","role":"user","mode":"token",` +
				`"token":"h.p.s","token_type":"Bearer","expires_at":"2026-11-23T12:47:10Z","expires_in":1800}}`,
		},
		{
			name: "get",
			resp: protocol.Response{Status: 200, Message: "ok", Data: &protocol.ResourceData{
				Resource: "protected", Username: "alice", Role: "user", Content: "Hello alice, this is protected content.",
			}},
			want: `{"ok":true,"status":200,"message":"ok","data":{"resource":"protected","username":"alice","role":"user",` +
				`"content":"Hello alice, this is protected content."}}`,
		},
		{
			name: "whoami",
			resp: protocol.Response{Status: 200, Message: "ok", Data: &protocol.WhoAmIData{Username: "root", Role: "admin", Auth: "token"}},
			want: `{"ok":true,"status":200,"message":"ok","data":{"username":"root","role":"admin","auth":"token"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := protocol.AppendResponse(nil, &tc.resp)
			if string(got) != tc.want+"\n" {
				t.Errorf("AppendResponse =\n  %s\nwant\n  %s", got, tc.want)
			}
			m := oneLine(t, got)
			if ok, _ := m["ok"].(bool); ok != tc.resp.OK() {
				t.Errorf("ok = %v, want %v", m["ok"], tc.resp.OK())
			}
			if st, _ := m["status"].(float64); int(st) != tc.resp.Status {
				t.Errorf("status = %v, want %d", m["status"], tc.resp.Status)
			}
			if msg, _ := m["message"].(string); msg != tc.resp.Message {
				t.Errorf("message = %q, want %q", m["message"], tc.resp.Message)
			}
			_, hasErr := m["error"]
			if hasErr == tc.resp.OK() {
				t.Errorf("error present = %v on ok = %v", hasErr, tc.resp.OK())
			}
			_, hasData := m["data"]
			if hasData != (tc.resp.Data != nil) {
				t.Errorf("data present = %v, want %v", hasData, tc.resp.Data != nil)
			}
			_, hasID := m["id"]
			if hasID != (len(tc.resp.ID) > 0) {
				t.Errorf("id present = %v, want %v", hasID, len(tc.resp.ID) > 0)
			}

			// Appending keeps what dst held.
			prefix := []byte("previous line\n")
			got2 := protocol.AppendResponse(append([]byte(nil), prefix...), &tc.resp)
			if !bytes.Equal(got2, append(prefix, got...)) {
				t.Errorf("AppendResponse onto a non-empty dst = %q", got2)
			}

			// Clients decode it with protocol.Message.
			var msg protocol.Message
			if err := json.Unmarshal(got, &msg); err != nil {
				t.Fatal(err)
			}
			if msg.Event != "" || msg.OK != tc.resp.OK() || msg.Status != tc.resp.Status || msg.Error != tc.resp.Error ||
				msg.Message != tc.resp.Message || string(msg.ID) != string(tc.resp.ID) {
				t.Errorf("decoded Message = %+v", msg)
			}
			if e := msg.Err(); (e == nil) != tc.resp.OK() || e != nil && (e.Code != tc.resp.Error || e.Message != tc.resp.Message) {
				t.Errorf("Message.Err() = %v", e)
			}
		})
	}
}

func TestAppendHello(t *testing.T) {
	got := protocol.AppendHello(nil, "0.1.0")
	if want := `{"event":"hello","server":"authlined","version":"0.1.0","proto":1}` + "\n"; string(got) != want {
		t.Errorf("AppendHello = %s, want %s", got, want)
	}
	oneLine(t, got)
	// A strange version string still gives one valid line.
	got = protocol.AppendHello([]byte("x"), "1.0.0-rc.1+\"build\"\n\u2028")
	if got[0] != 'x' {
		t.Fatalf("AppendHello dropped dst")
	}
	m := oneLine(t, got[1:])
	if m["version"] != "1.0.0-rc.1+\"build\"\n\u2028" || m["proto"] != float64(1) || m["event"] != "hello" || m["server"] != "authlined" {
		t.Errorf("hello = %v", m)
	}
	var msg protocol.Message
	if err := json.Unmarshal(got[1:], &msg); err != nil || msg.Event != "hello" || msg.Proto != protocol.Proto {
		t.Errorf("hello as Message = %+v, %v", msg, err)
	}
}

func TestAppendBye(t *testing.T) {
	// idle_timeout has no constant in package protocol; the server spells
	// it out.
	for _, reason := range []string{protocol.ByeQuit, protocol.ByeLineTooLong, protocol.ByeShutdown, "idle_timeout"} {
		got := protocol.AppendBye(nil, reason)
		if want := `{"event":"bye","reason":"` + reason + `"}` + "\n"; string(got) != want {
			t.Errorf("AppendBye = %s, want %s", got, want)
		}
		m := oneLine(t, got)
		if len(m) != 2 {
			t.Errorf("bye has fields %v, want event and reason only", m)
		}
	}
	if protocol.ByeQuit != "quit" || protocol.ByeLineTooLong != "line_too_long" || protocol.ByeShutdown != "shutdown" {
		t.Errorf("bye reasons changed: %q %q %q", protocol.ByeQuit, protocol.ByeLineTooLong, protocol.ByeShutdown)
	}
}

// TestDataAppendJSON compares each hand-written encoder with encoding/json
// on the same struct.
func TestDataAppendJSON(t *testing.T) {
	const tricky = "a\"b\\c\n\t\x00\u2028</script>&é🙂"
	for _, tc := range []struct {
		name string
		data protocol.Data
	}{
		{"user", &protocol.UserData{Username: "alice", Role: "user"}},
		{"user empty", &protocol.UserData{}},
		{"user tricky", &protocol.UserData{Username: tricky, Role: tricky}},
		{"login session", &protocol.LoginData{Username: "alice", Role: "user", Mode: "session"}},
		{"login token", &protocol.LoginData{Username: "alice", Role: "admin", Mode: "token", Token: "eyJ.x.y",
			TokenType: "Bearer", ExpiresAt: expiry, ExpiresIn: 1800}},
		{"login tricky", &protocol.LoginData{Username: tricky, Role: tricky, Mode: tricky, Token: tricky,
			TokenType: tricky, ExpiresAt: expiry, ExpiresIn: 1}},
		{"resource", &protocol.ResourceData{Resource: "admin", Username: "root", Role: "admin", Content: "Welcome to the admin area, root."}},
		{"resource tricky", &protocol.ResourceData{Resource: tricky, Username: tricky, Role: tricky, Content: tricky}},
		{"whoami session", &protocol.WhoAmIData{Username: "alice", Role: "user", Auth: protocol.AuthSession}},
		{"whoami token", &protocol.WhoAmIData{Username: "alice", Role: "user", Auth: protocol.AuthToken}},
		{"whoami tricky", &protocol.WhoAmIData{Username: tricky, Role: tricky, Auth: tricky}},
		{"jwks one key", &protocol.JWKSData{Keys: []protocol.JWK{{Kty: "OKP", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", Kid: "abc", Alg: "EdDSA", Use: "sig"}}}},
		{"jwks two keys", &protocol.JWKSData{Keys: []protocol.JWK{{Kty: "OKP", Kid: "a"}, {Kty: "OKP", Kid: "b", X: "x"}}}},
		{"jwks tricky", &protocol.JWKSData{Keys: []protocol.JWK{{Kty: tricky, Crv: tricky, X: tricky, Kid: tricky, Alg: tricky, Use: tricky}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.data.AppendJSON(nil)
			if !json.Valid(b) {
				t.Fatalf("AppendJSON = %s: not valid JSON", b)
			}
			if bytes.ContainsAny(b, "\r\n") {
				t.Errorf("AppendJSON = %q: raw line break", b)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if want := asMap(t, tc.data); !reflect.DeepEqual(got, want) {
				t.Errorf("AppendJSON =\n  %v\nencoding/json =\n  %v", got, want)
			}
		})
	}
}

// TestJWKSDataEmpty: a server without public keys answers an empty key
// set, never null (a JWKS consumer iterates over keys).
func TestJWKSDataEmpty(t *testing.T) {
	for _, d := range []*protocol.JWKSData{{}, {Keys: []protocol.JWK{}}} {
		if got := string(d.AppendJSON(nil)); got != `{"keys":[]}` {
			t.Errorf("AppendJSON = %s, want {\"keys\":[]}", got)
		}
	}
	d := &protocol.JWKSData{Keys: []protocol.JWK{{Kty: "OKP", Crv: "Ed25519", X: "eA", Kid: "k1", Alg: "EdDSA", Use: "sig"}}}
	want := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"eA","kid":"k1","alg":"EdDSA","use":"sig"}]}`
	if got := string(d.AppendJSON(nil)); got != want {
		t.Errorf("AppendJSON = %s, want %s", got, want)
	}
}

// TestLoginDataExpiry pins how expires_at is written: UTC, whole seconds.
func TestLoginDataExpiry(t *testing.T) {
	loc := time.FixedZone("X", 5*3600+30*60)
	d := &protocol.LoginData{Username: "a", Role: "user", Mode: "token", Token: "t", TokenType: "Bearer",
		ExpiresAt: time.Date(2026, 1, 2, 8, 4, 5, 999_000_000, loc), ExpiresIn: 60}
	var m map[string]any
	if err := json.Unmarshal(d.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	if m["expires_at"] != "2026-01-02T02:34:05Z" {
		t.Errorf("expires_at = %v, want 2026-01-02T02:34:05Z", m["expires_at"])
	}
	if m["expires_in"] != float64(60) || m["token_type"] != "Bearer" {
		t.Errorf("login data = %v", m)
	}
}

// appendStringCases are strings that are easy to get wrong.
var appendStringCases = []string{
	"",
	"plain",
	`"`,
	`\`,
	`say "hi" \ bye \\ \"`,
	"\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f",
	"line1\nline2\r\nline3",
	"\x7f",
	"\u2028",
	"\u2029",
	"a\u2028b\u2029c",
	"\u2027\u202a", // neighbours of U+2028/2029, not escaped
	"<script>alert('&')</script>",
	"é中文🙂👍🏽👨‍👩‍👧",
	"\ufeffBOM",
	"\uFFFD",
	"\U0010FFFF",
	"\xff",
	"a\xffb",
	"\xc3",             // truncated 2-byte sequence
	"\xc3(",            // bad continuation
	"\xe2\x82",         // truncated 3-byte
	"\xed\xa0\x80",     // UTF-8-encoded surrogate
	"\xc0\xaf",         // overlong
	"\xf4\x90\x80\x80", // beyond U+10FFFF
	"ok\xe2\x80\xa8\xffend",
	strings.Repeat("x\n", 100),
}

func TestAppendString(t *testing.T) {
	for _, s := range appendStringCases {
		got := protocol.AppendString(nil, s)
		if !json.Valid(got) {
			t.Errorf("AppendString(%q) = %s: invalid JSON", s, got)
			continue
		}
		if bytes.ContainsAny(got, "\n\r") || bytes.Contains(got, []byte("\u2028")) || bytes.Contains(got, []byte("\u2029")) {
			t.Errorf("AppendString(%q) = %q: raw line terminator", s, got)
		}
		if !utf8.Valid(got) {
			t.Errorf("AppendString(%q) = %q: invalid UTF-8", s, got)
		}
		ref, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var gotS, refS string
		if err := json.Unmarshal(got, &gotS); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ref, &refS); err != nil {
			t.Fatal(err)
		}
		if gotS != refS {
			t.Errorf("AppendString(%q) decodes to %q, encoding/json's to %q", s, gotS, refS)
		}
		if utf8.ValidString(s) && gotS != s {
			t.Errorf("AppendString(%q) decodes to %q", s, gotS)
		}
		// dst is appended to, not replaced.
		if got2 := protocol.AppendString([]byte("ab"), s); string(got2) != "ab"+string(got) {
			t.Errorf("AppendString onto dst = %q", got2)
		}
	}
}

func TestAppendStringExact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{`a"b\c`, `"a\"b\\c"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f\x08\x0c", `"\u0000\u001f\u0008\u000c"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\xffx", `"\ufffdx"`},
		{"<&>", `"<&>"`}, // no HTML escaping, unlike encoding/json
		{"é🙂", `"é🙂"`},
	} {
		if got := string(protocol.AppendString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendResponseAllocs(t *testing.T) {
	data := &protocol.ResourceData{Resource: "protected", Username: "alice", Role: "user",
		Content: "Hello alice, this is protected content."}
	resp := protocol.Response{ID: json.RawMessage(`"req-17"`), Status: protocol.StatusOK, Message: "ok", Data: data}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = protocol.AppendResponse(buf[:0], &resp)
	})
	if allocs != 0 {
		t.Errorf("AppendResponse with a reused buffer: %v allocs per run, want 0", allocs)
	}
	errResp := protocol.ErrorResponse(json.RawMessage(`3`), protocol.Errorf(protocol.CodeForbidden, "the admin resource requires the admin role"))
	allocs = testing.AllocsPerRun(1000, func() {
		buf = protocol.AppendResponse(buf[:0], &errResp)
	})
	if allocs != 0 {
		t.Errorf("AppendResponse (error) with a reused buffer: %v allocs per run, want 0", allocs)
	}
}

func BenchmarkAppendResponseResource(b *testing.B) {
	data := &protocol.ResourceData{Resource: "protected", Username: "alice", Role: "user",
		Content: "Hello alice, this is protected content."}
	resp := protocol.Response{ID: json.RawMessage(`17`), Status: protocol.StatusOK, Message: "ok", Data: data}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendResponse(buf[:0], &resp)
	}
	b.SetBytes(int64(len(buf)))
}

// TestMessageErrRetryAfter: an error's retry_after survives the trip
// through the wire, rounded up to whole seconds, so clients can say how
// long to wait.
func TestMessageErrRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{
		{"none", 0, 0},
		{"whole seconds", 42 * time.Second, 42 * time.Second},
		{"rounded up", 1500 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := protocol.ErrorResponse(nil, &protocol.Error{Code: protocol.CodeRateLimited, Message: "slow down", RetryAfter: tc.after})
			var msg protocol.Message
			if err := json.Unmarshal(protocol.AppendResponse(nil, &r), &msg); err != nil {
				t.Fatal(err)
			}
			e := msg.Err()
			if e == nil || e.Code != protocol.CodeRateLimited || e.RetryAfter != tc.want {
				t.Fatalf("Message.Err() = %+v, want rate_limited with RetryAfter %v", e, tc.want)
			}
		})
	}
	// Data of another shape is not taken for a retry time.
	msg := protocol.Message{Status: 403, Error: protocol.CodeForbidden, Data: json.RawMessage(`{"retry_after":"soon"}`)}
	if e := msg.Err(); e.RetryAfter != 0 {
		t.Errorf("RetryAfter = %v from a malformed retry_after", e.RetryAfter)
	}
}
