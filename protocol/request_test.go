package protocol_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/authline/authline/protocol"
)

// parseCase is one ParseRequest test. On success want is compared in full
// (ID aside); on error only want.Cmd, when set, is compared, with code and
// the message.
type parseCase struct {
	name string
	line string
	id   string // expected raw ID; "" means nil
	want protocol.Request
	code protocol.Code // "" for success
	msg  string        // exact message, when set
	pre  string        // message prefix, when set
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, perr := protocol.ParseRequest([]byte(tc.line))
			if got := string(req.ID); got != tc.id {
				t.Errorf("ID = %q, want %q", got, tc.id)
			}
			if tc.id == "" && req.ID != nil {
				t.Errorf("ID = %q, want nil", req.ID)
			}
			if tc.code == "" {
				if perr != nil {
					t.Fatalf("ParseRequest(%q) error %v, want success", tc.line, perr)
				}
				got := req
				got.ID = nil
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("ParseRequest(%q) =\n  %+v\nwant\n  %+v", tc.line, got, tc.want)
				}
				return
			}
			if perr == nil {
				t.Fatalf("ParseRequest(%q) = %+v, want %s error", tc.line, req, tc.code)
			}
			if perr.Code != tc.code {
				t.Errorf("code = %s (%q), want %s", perr.Code, perr.Message, tc.code)
			}
			if tc.msg != "" && perr.Message != tc.msg {
				t.Errorf("message = %q, want %q", perr.Message, tc.msg)
			}
			if tc.pre != "" && !strings.HasPrefix(perr.Message, tc.pre) {
				t.Errorf("message = %q, want prefix %q", perr.Message, tc.pre)
			}
			if tc.want.Cmd != "" && req.Cmd != tc.want.Cmd {
				t.Errorf("Cmd = %q, want %q", req.Cmd, tc.want.Cmd)
			}
		})
	}
}

const (
	msgUTF8      = "request is not valid UTF-8"
	msgBadID     = "id must be a string or a number"
	msgMode      = `mode must be "session" or "token"`
	jsonSyntaxPr = "malformed JSON request: "
)

func TestParseRequestJSON(t *testing.T) {
	runParseCases(t, []parseCase{
		// Every command with every field it uses.
		{name: "register", line: `{"id":"r1","cmd":"REGISTER","username":"alice","password":"s3cret pass"}`, id: `"r1"`,
			want: protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "s3cret pass"}},
		{name: "login default mode", line: `{"id":1,"cmd":"LOGIN","username":"alice","password":"pw with spaces"}`, id: `1`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw with spaces", Mode: "session"}},
		{name: "login empty mode", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":""}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session"}},
		{name: "login session", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":"session"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session"}},
		{name: "login token", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":"token"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token"}},
		{name: "login TOKEN", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":"TOKEN"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token"}},
		{name: "login Session", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":"Session"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session"}},
		{name: "login other mode", line: `{"id":"m","cmd":"LOGIN","username":"alice","password":"pw","mode":"cookie"}`, id: `"m"`,
			want: protocol.Request{Cmd: "LOGIN"}, code: protocol.CodeBadRequest, msg: msgMode},
		{name: "login mode with space", line: `{"cmd":"LOGIN","username":"alice","password":"pw","mode":" token"}`,
			code: protocol.CodeBadRequest, msg: msgMode},
		{name: "get", line: `{"id":"g","cmd":"GET","resource":"protected"}`, id: `"g"`,
			want: protocol.Request{Cmd: "GET", Resource: "protected"}},
		{name: "get token, resource lower-cased", line: `{"cmd":"GET","resource":"ADMIN","token":"Ab.Cd.Ef"}`,
			want: protocol.Request{Cmd: "GET", Resource: "admin", Token: "Ab.Cd.Ef"}},
		{name: "get unknown resource", line: `{"cmd":"GET","resource":"Secrets","token":"x"}`,
			want: protocol.Request{Cmd: "GET", Resource: "Secrets", Token: "x"}, code: protocol.CodeNotFound,
			msg: `unknown resource "Secrets" (known: protected, admin)`},
		{name: "get unknown resource, non-ASCII", line: `{"cmd":"GET","resource":"\u212admin"}`,
			want: protocol.Request{Cmd: "GET", Resource: "\u212admin"}, code: protocol.CodeNotFound},
		{name: "logout", line: `{"cmd":"LOGOUT"}`, want: protocol.Request{Cmd: "LOGOUT"}},
		{name: "logout token", line: `{"cmd":"LOGOUT","token":"t.o.k"}`, want: protocol.Request{Cmd: "LOGOUT", Token: "t.o.k"}},
		{name: "whoami", line: `{"cmd":"WHOAMI"}`, want: protocol.Request{Cmd: "WHOAMI"}},
		{name: "whoami token", line: `{"cmd":"WHOAMI","token":"t.o.k"}`, want: protocol.Request{Cmd: "WHOAMI", Token: "t.o.k"}},
		{name: "ping", line: `{"id":0,"cmd":"PING"}`, id: `0`, want: protocol.Request{Cmd: "PING"}},
		{name: "quit", line: `{"cmd":"QUIT"}`, want: protocol.Request{Cmd: "QUIT"}},
		// Fields a command does not use are parsed and left alone.
		{name: "ping with every field", line: `{"cmd":"PING","username":"u","password":"p","mode":"whatever","resource":"R","token":"t"}`,
			want: protocol.Request{Cmd: "PING", Username: "u", Password: "p", Mode: "whatever", Resource: "R", Token: "t"}},

		// Command names are case-insensitive.
		{name: "cmd lower", line: `{"cmd":"login","username":"a","password":"b"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "a", Password: "b", Mode: "session"}},
		{name: "cmd mixed", line: `{"cmd":"LoGiN","username":"a","password":"b"}`,
			want: protocol.Request{Cmd: "LOGIN", Username: "a", Password: "b", Mode: "session"}},
		{name: "cmd whoami lower", line: `{"cmd":"whoami"}`, want: protocol.Request{Cmd: "WHOAMI"}},

		// Unknown fields are ignored, whatever their type.
		{name: "unknown fields", line: `{"cmd":"PING","extra":1,"nested":{"a":[1,true,null]},"list":[{"x":"y"}],"flag":false}`,
			want: protocol.Request{Cmd: "PING"}},
		// Whitespace inside the object is JSON's business.
		{name: "json whitespace", line: "{ \"id\" : 42 ,\t\"cmd\" : \"PING\" }", id: `42`, want: protocol.Request{Cmd: "PING"}},

		// Ids: strings and numbers are echoed verbatim.
		{name: "id string", line: `{"id":"abc","cmd":"PING"}`, id: `"abc"`, want: protocol.Request{Cmd: "PING"}},
		{name: "id string escapes kept", line: `{"id":"a\u00e9\"<","cmd":"PING"}`, id: `"a\u00e9\"<"`, want: protocol.Request{Cmd: "PING"}},
		{name: "id empty string", line: `{"id":"","cmd":"PING"}`, id: `""`, want: protocol.Request{Cmd: "PING"}},
		{name: "id integer", line: `{"id":42,"cmd":"PING"}`, id: `42`, want: protocol.Request{Cmd: "PING"}},
		{name: "id negative", line: `{"id":-7,"cmd":"PING"}`, id: `-7`, want: protocol.Request{Cmd: "PING"}},
		{name: "id float", line: `{"id":1.5e3,"cmd":"PING"}`, id: `1.5e3`, want: protocol.Request{Cmd: "PING"}},
		{name: "id negative float", line: `{"id":-0.25,"cmd":"PING"}`, id: `-0.25`, want: protocol.Request{Cmd: "PING"}},
		{name: "id big", line: `{"id":123456789012345678901234567890,"cmd":"PING"}`, id: `123456789012345678901234567890`, want: protocol.Request{Cmd: "PING"}},
		{name: "id null is absent", line: `{"id":null,"cmd":"PING"}`, want: protocol.Request{Cmd: "PING"}},
		{name: "id absent", line: `{"cmd":"PING"}`, want: protocol.Request{Cmd: "PING"}},
		{name: "id after cmd", line: `{"cmd":"PING","id":"late"}`, id: `"late"`, want: protocol.Request{Cmd: "PING"}},
		// Other id types are refused, and not echoed.
		{name: "id true", line: `{"id":true,"cmd":"PING"}`, code: protocol.CodeBadRequest, msg: msgBadID},
		{name: "id false", line: `{"id":false,"cmd":"PING"}`, code: protocol.CodeBadRequest, msg: msgBadID},
		{name: "id object", line: `{"id":{"n":1},"cmd":"PING"}`, code: protocol.CodeBadRequest, msg: msgBadID},
		{name: "id array", line: `{"id":[1],"cmd":"PING"}`, code: protocol.CodeBadRequest, msg: msgBadID},
		{name: "id invalid without cmd", line: `{"id":true}`, code: protocol.CodeBadRequest, msg: msgBadID},

		// cmd missing or of the wrong type.
		{name: "missing cmd", line: `{"id":5}`, id: `5`, code: protocol.CodeBadRequest, msg: "missing cmd"},
		{name: "empty object", line: `{}`, code: protocol.CodeBadRequest, msg: "missing cmd"},
		{name: "empty cmd", line: `{"id":5,"cmd":""}`, id: `5`, code: protocol.CodeBadRequest, msg: "missing cmd"},
		{name: "null cmd", line: `{"id":5,"cmd":null}`, id: `5`, code: protocol.CodeBadRequest, msg: "missing cmd"},
		{name: "cmd number", line: `{"id":"n","cmd":5}`, id: `"n"`, code: protocol.CodeBadRequest, msg: `field "cmd" must be a string`},
		{name: "cmd bool", line: `{"id":"n","cmd":true}`, id: `"n"`, code: protocol.CodeBadRequest, msg: `field "cmd" must be a string`},
		{name: "cmd array", line: `{"id":"n","cmd":["PING"]}`, id: `"n"`, code: protocol.CodeBadRequest, msg: `field "cmd" must be a string`},
		{name: "cmd object", line: `{"id":"n","cmd":{"name":"PING"}}`, id: `"n"`, code: protocol.CodeBadRequest, msg: `field "cmd" must be a string`},
		{name: "unknown cmd", line: `{"id":9,"cmd":"FETCH"}`, id: `9`, code: protocol.CodeUnknownCommand, msg: `unknown command "FETCH"`},
		{name: "cmd with spaces", line: `{"cmd":" PING"}`, code: protocol.CodeUnknownCommand, msg: `unknown command " PING"`},

		// Wrong field types name the field; the id is salvaged.
		{name: "username number", line: `{"id":"u","cmd":"REGISTER","username":5,"password":"pw"}`, id: `"u"`,
			code: protocol.CodeBadRequest, msg: `field "username" must be a string`},
		{name: "password bool", line: `{"id":2,"cmd":"LOGIN","username":"a","password":true}`, id: `2`,
			code: protocol.CodeBadRequest, msg: `field "password" must be a string`},
		{name: "mode number", line: `{"id":3,"cmd":"LOGIN","username":"a","password":"b","mode":1}`, id: `3`,
			code: protocol.CodeBadRequest, msg: `field "mode" must be a string`},
		{name: "resource array", line: `{"id":4,"cmd":"GET","resource":["admin"]}`, id: `4`,
			code: protocol.CodeBadRequest, msg: `field "resource" must be a string`},
		{name: "token object", line: `{"id":-4,"cmd":"WHOAMI","token":{"jwt":"x"}}`, id: `-4`,
			code: protocol.CodeBadRequest, msg: `field "token" must be a string`},
		{name: "wrong type before id", line: `{"username":5,"id":"late","cmd":"REGISTER"}`, id: `"late"`,
			code: protocol.CodeBadRequest, msg: `field "username" must be a string`},
		{name: "wrong type, no id", line: `{"cmd":"REGISTER","username":5}`,
			code: protocol.CodeBadRequest, msg: `field "username" must be a string`},
		{name: "wrong type, invalid id", line: `{"id":true,"cmd":"REGISTER","username":5}`,
			code: protocol.CodeBadRequest, msg: `field "username" must be a string`},

		// Malformed JSON: nothing, not even the id, can be trusted.
		{name: "truncated", line: `{"id":1,"cmd":"PING"`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "lone brace", line: `{`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "single quotes", line: `{'cmd':'PING'}`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "trailing comma", line: `{"cmd":"PING",}`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "bare word value", line: `{"cmd":PING}`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "control char in string", line: "{\"cmd\":\"PI\x01NG\"}", code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "two objects", line: `{"id":1,"cmd":"PING"}{"cmd":"PING"}`, code: protocol.CodeBadRequest,
			msg: "malformed JSON request: invalid character '{' after top-level value"},
		{name: "two objects spaced", line: `{"cmd":"PING"} {"cmd":"PING"}`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "trailing garbage", line: `{"id":1,"cmd":"PING"} x`, code: protocol.CodeBadRequest,
			msg: "malformed JSON request: invalid character 'x' after top-level value"},
		{name: "trailing bracket", line: `{"cmd":"PING"}]`, code: protocol.CodeBadRequest, pre: jsonSyntaxPr},
		{name: "trailing NUL", line: "{\"cmd\":\"PING\"}\x00", code: protocol.CodeBadRequest, pre: jsonSyntaxPr},

		// Invalid UTF-8 anywhere on the line is refused before parsing.
		{name: "invalid utf8 in string", line: "{\"id\":1,\"cmd\":\"PING\",\"username\":\"\xff\"}", code: protocol.CodeBadRequest, msg: msgUTF8},
		{name: "invalid utf8 in id", line: "{\"id\":\"\xc3\",\"cmd\":\"PING\"}", code: protocol.CodeBadRequest, msg: msgUTF8},
		{name: "utf8 surrogate bytes", line: "{\"cmd\":\"PING\",\"token\":\"\xed\xa0\x80\"}", code: protocol.CodeBadRequest, msg: msgUTF8},
		{name: "overlong utf8", line: "{\"cmd\":\"PING\",\"token\":\"\xc0\xaf\"}", code: protocol.CodeBadRequest, msg: msgUTF8},
		// A lone surrogate written as an escape is valid JSON text; it
		// decodes to U+FFFD.
		{name: "escaped lone surrogate", line: `{"cmd":"PING","username":"\ud800"}`,
			want: protocol.Request{Cmd: "PING", Username: "\uFFFD"}},
		{name: "non-ASCII password", line: `{"cmd":"REGISTER","username":"zoé","password":"pässwörd ✓ 🔑"}`,
			want: protocol.Request{Cmd: "REGISTER", Username: "zoé", Password: "pässwörd ✓ 🔑"}},

		// What each command needs.
		{name: "register missing username", line: `{"id":1,"cmd":"REGISTER","password":"pw"}`, id: `1`,
			want: protocol.Request{Cmd: "REGISTER"}, code: protocol.CodeBadRequest, msg: "missing username"},
		{name: "register missing password", line: `{"id":1,"cmd":"REGISTER","username":"alice"}`, id: `1`,
			want: protocol.Request{Cmd: "REGISTER"}, code: protocol.CodeBadRequest, msg: "missing password"},
		{name: "register missing both", line: `{"cmd":"REGISTER"}`, code: protocol.CodeBadRequest, msg: "missing username"},
		{name: "login missing username", line: `{"cmd":"LOGIN","username":"","password":"pw"}`,
			want: protocol.Request{Cmd: "LOGIN"}, code: protocol.CodeBadRequest, msg: "missing username"},
		{name: "login missing password", line: `{"cmd":"LOGIN","username":"alice"}`,
			want: protocol.Request{Cmd: "LOGIN"}, code: protocol.CodeBadRequest, msg: "missing password"},
		{name: "login missing password before mode", line: `{"cmd":"LOGIN","username":"alice","mode":"bad"}`,
			code: protocol.CodeBadRequest, msg: "missing password"},
		{name: "get missing resource", line: `{"id":"g","cmd":"GET"}`, id: `"g"`,
			want: protocol.Request{Cmd: "GET"}, code: protocol.CodeBadRequest, msg: "missing resource"},
		{name: "get empty resource", line: `{"cmd":"GET","resource":"","token":"t"}`,
			code: protocol.CodeBadRequest, msg: "missing resource"},
	})
}

func TestParseRequestInline(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "register", line: "REGISTER alice s3cretpass",
			want: protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "s3cretpass", Inline: true}},
		{name: "register lower", line: "register alice s3cretpass",
			want: protocol.Request{Cmd: "REGISTER", Username: "alice", Password: "s3cretpass", Inline: true}},
		{name: "register one arg", line: "REGISTER alice", want: protocol.Request{Cmd: "REGISTER"},
			code: protocol.CodeBadRequest, msg: "usage: REGISTER username password"},
		{name: "register no args", line: "REGISTER", code: protocol.CodeBadRequest, msg: "usage: REGISTER username password"},
		{name: "register three args", line: "REGISTER alice pass word", code: protocol.CodeBadRequest, msg: "usage: REGISTER username password"},

		{name: "login", line: "LOGIN alice pw",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session", Inline: true}},
		{name: "login mixed case", line: "LoGiN alice pw",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session", Inline: true}},
		{name: "login session", line: "LOGIN alice pw session",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "session", Inline: true}},
		{name: "login token", line: "LOGIN alice pw token",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token", Inline: true}},
		{name: "login TOKEN", line: "LOGIN alice pw TOKEN",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token", Inline: true}},
		{name: "login other mode", line: "LOGIN alice pw forever", want: protocol.Request{Cmd: "LOGIN"},
			code: protocol.CodeBadRequest, msg: msgMode},
		{name: "login one arg", line: "LOGIN alice", code: protocol.CodeBadRequest, msg: "usage: LOGIN username password [session|token]"},
		{name: "login no args", line: "LOGIN", code: protocol.CodeBadRequest, msg: "usage: LOGIN username password [session|token]"},
		{name: "login four args", line: "LOGIN alice pw token extra", code: protocol.CodeBadRequest, msg: "usage: LOGIN username password [session|token]"},

		{name: "get", line: "GET protected", want: protocol.Request{Cmd: "GET", Resource: "protected", Inline: true}},
		{name: "get upper resource", line: "GET ADMIN", want: protocol.Request{Cmd: "GET", Resource: "admin", Inline: true}},
		{name: "get token kept verbatim", line: "get Protected eyJ.AbC.x-_Y",
			want: protocol.Request{Cmd: "GET", Resource: "protected", Token: "eyJ.AbC.x-_Y", Inline: true}},
		{name: "get no args", line: "GET", want: protocol.Request{Cmd: "GET"}, code: protocol.CodeBadRequest, msg: "usage: GET resource [token]"},
		{name: "get three args", line: "GET a b c", code: protocol.CodeBadRequest, msg: "usage: GET resource [token]"},

		{name: "logout", line: "LOGOUT", want: protocol.Request{Cmd: "LOGOUT", Inline: true}},
		{name: "logout token", line: "logout t.o.k", want: protocol.Request{Cmd: "LOGOUT", Token: "t.o.k", Inline: true}},
		{name: "logout two args", line: "LOGOUT a b", code: protocol.CodeBadRequest, msg: "usage: LOGOUT [ALL] [token]"},
		{name: "whoami", line: "WHOAMI", want: protocol.Request{Cmd: "WHOAMI", Inline: true}},
		{name: "whoami token", line: "WhoAmI t.o.k", want: protocol.Request{Cmd: "WHOAMI", Token: "t.o.k", Inline: true}},
		{name: "whoami two args", line: "WHOAMI a b", code: protocol.CodeBadRequest, msg: "usage: WHOAMI [token]"},
		{name: "ping", line: "PING", want: protocol.Request{Cmd: "PING", Inline: true}},
		{name: "ping lower", line: "ping", want: protocol.Request{Cmd: "PING", Inline: true}},
		{name: "ping arg", line: "PING extra", want: protocol.Request{Cmd: "PING"}, code: protocol.CodeBadRequest, msg: "usage: PING"},
		{name: "quit", line: "QUIT", want: protocol.Request{Cmd: "QUIT", Inline: true}},
		{name: "quit arg", line: "quit now", code: protocol.CodeBadRequest, msg: "usage: QUIT"},

		// Runs of spaces and tabs separate arguments.
		{name: "spaces and tabs", line: "  GET \t protected\t\tt.o.k  ",
			want: protocol.Request{Cmd: "GET", Resource: "protected", Token: "t.o.k", Inline: true}},
		{name: "tabs only", line: "LOGIN\talice\tpw\ttoken",
			want: protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token", Inline: true}},
		// Inline arguments are taken as they are, JSON-looking or not.
		{name: "quotes not special", line: `REGISTER "alice" "pw"`,
			want: protocol.Request{Cmd: "REGISTER", Username: `"alice"`, Password: `"pw"`, Inline: true}},

		// Lines that do not start with "{" are inline, JSON or not.
		{name: "json array", line: "[1,2]", code: protocol.CodeUnknownCommand, msg: `unknown command "[1,2]"`},
		{name: "json string", line: `"str"`, code: protocol.CodeUnknownCommand, msg: `unknown command ""str""`},
		{name: "json number", line: `42`, code: protocol.CodeUnknownCommand, msg: `unknown command "42"`},
		{name: "unknown", line: "FETCH protected", code: protocol.CodeUnknownCommand, msg: `unknown command "FETCH"`},
		{name: "unknown long", line: strings.Repeat("x", 100) + " arg", code: protocol.CodeUnknownCommand,
			msg: `unknown command "` + strings.Repeat("x", 32) + `..."`},
		{name: "unknown exactly 32", line: strings.Repeat("y", 32), code: protocol.CodeUnknownCommand,
			msg: `unknown command "` + strings.Repeat("y", 32) + `"`},
		{name: "unknown 33", line: strings.Repeat("y", 33), code: protocol.CodeUnknownCommand,
			msg: `unknown command "` + strings.Repeat("y", 32) + `..."`},
		{name: "unknown control char", line: "PI\x00NG", code: protocol.CodeUnknownCommand, msg: `unknown command "PI?NG"`},

		{name: "invalid utf8 inline", line: "REGISTER alice pass\xffword", code: protocol.CodeBadRequest, msg: msgUTF8},
		{name: "invalid utf8 command", line: "\xfePING", code: protocol.CodeBadRequest, msg: msgUTF8},
		{name: "empty", line: "", code: protocol.CodeBadRequest, msg: "empty request"},
		{name: "only blanks", line: " \t ", code: protocol.CodeBadRequest, msg: "empty request"},
	})
}

// TestParseRequestUnknownCommandJSONTruncated checks that the JSON form
// truncates a long unknown command as the inline form does, keeping the id.
func TestParseRequestUnknownCommandJSONTruncated(t *testing.T) {
	long := strings.Repeat("Z", 5000)
	req, perr := protocol.ParseRequest([]byte(`{"id":"long","cmd":"` + long + `"}`))
	if perr == nil || perr.Code != protocol.CodeUnknownCommand {
		t.Fatalf("error = %v, want unknown_command", perr)
	}
	if want := `unknown command "` + long[:32] + `..."`; perr.Message != want {
		t.Errorf("message = %q, want %q", perr.Message, want)
	}
	if string(req.ID) != `"long"` {
		t.Errorf("ID = %q, want %q", req.ID, `"long"`)
	}
}

// TestParseRequestEveryCommand checks that every command in Commands is
// accepted, in both forms and in lower case.
func TestParseRequestEveryCommand(t *testing.T) {
	args := map[string]string{
		protocol.CmdRegister: " alice s3cretpass",
		protocol.CmdLogin:    " alice s3cretpass",
		protocol.CmdGet:      " protected",
		protocol.CmdRefresh:  " r3fr3sh",
		protocol.CmdPasswd:   " old-pass new-pass",
		protocol.CmdUser:     " bob",
		protocol.CmdSetRole:  " bob admin",
		protocol.CmdDisable:  " bob",
		protocol.CmdEnable:   " bob",
		protocol.CmdDelete:   " bob",
		protocol.CmdUnlock:   " bob",
		protocol.CmdRevoke:   " bob",
	}
	fields := map[string]string{
		protocol.CmdRegister: `,"username":"alice","password":"s3cretpass"`,
		protocol.CmdLogin:    `,"username":"alice","password":"s3cretpass"`,
		protocol.CmdGet:      `,"resource":"protected"`,
		protocol.CmdRefresh:  `,"refresh_token":"r3fr3sh"`,
		protocol.CmdPasswd:   `,"old_password":"old-pass","new_password":"new-pass"`,
		protocol.CmdUser:     `,"username":"bob"`,
		protocol.CmdSetRole:  `,"username":"bob","role":"admin"`,
		protocol.CmdDisable:  `,"username":"bob"`,
		protocol.CmdEnable:   `,"username":"bob"`,
		protocol.CmdDelete:   `,"username":"bob"`,
		protocol.CmdUnlock:   `,"username":"bob"`,
		protocol.CmdRevoke:   `,"username":"bob"`,
	}
	if len(protocol.Commands) != 18 {
		t.Errorf("Commands has %d entries, want 18: %v", len(protocol.Commands), protocol.Commands)
	}
	for _, cmd := range protocol.Commands {
		for _, line := range []string{
			cmd + args[cmd],
			strings.ToLower(cmd) + args[cmd],
			`{"cmd":"` + cmd + `"` + fields[cmd] + `}`,
			`{"cmd":"` + strings.ToLower(cmd) + `"` + fields[cmd] + `}`,
		} {
			req, perr := protocol.ParseRequest([]byte(line))
			if perr != nil {
				t.Errorf("ParseRequest(%q): %v", line, perr)
				continue
			}
			if req.Cmd != cmd {
				t.Errorf("ParseRequest(%q).Cmd = %q, want %q", line, req.Cmd, cmd)
			}
			if req.Inline != (line[0] != '{') {
				t.Errorf("ParseRequest(%q).Inline = %v", line, req.Inline)
			}
		}
		u := protocol.Usage(cmd)
		if !strings.HasPrefix(u, cmd) {
			t.Errorf("Usage(%q) = %q, want it to start with the command", cmd, u)
		}
	}
	if u := protocol.Usage("NOPE"); u != "" {
		t.Errorf("Usage(NOPE) = %q, want empty", u)
	}
}

func TestTrimLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"\n", ""},
		{"\r\n", ""},
		{" \t \r\n", ""},
		{"PING", "PING"},
		{"PING\n", "PING"},
		{"PING\r\n", "PING"},
		{"  PING \t\r\n", "PING"},
		{"\tGET  protected\t\n", "GET  protected"},
		{`{"cmd":"PING"}` + "\r\n", `{"cmd":"PING"}`},
		{`  {"cmd":"PING"} ` + "\n", `{"cmd":"PING"}`},
		{"PING\v\n", "PING\v"}, // only spaces, tabs, CR and LF are trimmed
	} {
		if got := string(protocol.TrimLine([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseTrimmedLines runs lines as the server reads them, terminators
// included, through TrimLine and ParseRequest.
func TestParseTrimmedLines(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want protocol.Request
	}{
		{"PING\r\n", protocol.Request{Cmd: "PING", Inline: true}},
		{"LOGIN alice pw token\r\n", protocol.Request{Cmd: "LOGIN", Username: "alice", Password: "pw", Mode: "token", Inline: true}},
		{"  {\"cmd\":\"WHOAMI\",\"token\":\"t\"}\t\r\n", protocol.Request{Cmd: "WHOAMI", Token: "t"}},
		{"GET protected tok\r\n", protocol.Request{Cmd: "GET", Resource: "protected", Token: "tok", Inline: true}},
	} {
		req, perr := protocol.ParseRequest(protocol.TrimLine([]byte(tc.raw)))
		if perr != nil {
			t.Errorf("%q: %v", tc.raw, perr)
			continue
		}
		if !reflect.DeepEqual(req, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.raw, req, tc.want)
		}
	}
}

// TestParseRequestDoesNotRetainLine checks that the request does not alias
// the line buffer, which the server reuses for the next read.
func TestParseRequestDoesNotRetainLine(t *testing.T) {
	for _, line := range []string{
		`{"id":"abc","cmd":"GET","resource":"protected","token":"tok"}`,
		`{"id":"abc","cmd":"GET","resource":5}`,
		"GET protected tok",
	} {
		buf := []byte(line)
		req, _ := protocol.ParseRequest(buf)
		before := fmt.Sprintf("%q %+v", req.ID, req)
		for i := range buf {
			buf[i] = 'X'
		}
		if after := fmt.Sprintf("%q %+v", req.ID, req); after != before {
			t.Errorf("%s: request changed with the line buffer:\n  %s\n  %s", line, before, after)
		}
	}
}

func BenchmarkParseRequestJSONGet(b *testing.B) {
	line := []byte(`{"id":17,"cmd":"GET","resource":"protected","token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoidXNlciJ9.c2lnbmF0dXJl"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := protocol.ParseRequest(line); perr != nil {
			b.Fatal(perr)
		}
	}
}

func BenchmarkParseRequestInlineGet(b *testing.B) {
	line := []byte("GET protected eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoidXNlciJ9.c2lnbmF0dXJl")
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := protocol.ParseRequest(line); perr != nil {
			b.Fatal(perr)
		}
	}
}

// TestParserReusesToken checks that a Parser hands back the same string for
// a token it saw on the previous line, and the right one when it changes.
func TestParserReusesToken(t *testing.T) {
	var p protocol.Parser
	tokA, tokB := "aaa.bbb.ccc", "ddd.eee.fff"
	lines := []struct {
		line, token string
	}{
		{"GET protected " + tokA, tokA},
		{"WHOAMI " + tokA, tokA},
		{"GET protected " + tokB, tokB},
		{"LOGOUT all " + tokB, tokB},
		{"GET protected", ""},
		{"GET protected " + tokA, tokA},
	}
	for _, l := range lines {
		buf := []byte(l.line)
		req, perr := p.Parse(buf)
		if perr != nil {
			t.Fatalf("Parse(%q): %v", l.line, perr)
		}
		// The parser must not keep the line's bytes: the server reuses them.
		for i := range buf {
			buf[i] = 'x'
		}
		if req.Token != l.token {
			t.Fatalf("Parse(%q).Token = %q, want %q", l.line, req.Token, l.token)
		}
	}
	line := []byte("GET protected " + tokA)
	if n := testing.AllocsPerRun(100, func() {
		if req, _ := p.Parse(line); req.Token != tokA {
			t.Fatal("wrong token")
		}
	}); n != 0 {
		t.Fatalf("Parse of a repeated token line allocates %v times, want 0", n)
	}
}
