package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command names. Requests carry them case-insensitively; ParseRequest
// returns them in this canonical upper-case form.
const (
	CmdRegister = "REGISTER"
	CmdLogin    = "LOGIN"
	CmdGet      = "GET"
	CmdLogout   = "LOGOUT"
	CmdWhoAmI   = "WHOAMI"
	CmdPing     = "PING"
	CmdQuit     = "QUIT"
	CmdRefresh  = "REFRESH"
	CmdPasswd   = "PASSWD"
	// CmdJWKS returns the public keys that verify the server's EdDSA
	// tokens; it needs no authentication.
	CmdJWKS = "JWKS"

	// Admin commands: role admin only.
	CmdUsers   = "USERS"
	CmdUser    = "USER"
	CmdSetRole = "SETROLE"
	CmdDisable = "DISABLE"
	CmdEnable  = "ENABLE"
	CmdDelete  = "DELETE"
	CmdUnlock  = "UNLOCK"
	CmdRevoke  = "REVOKE"
)

// Commands lists the commands of protocol v1.
var Commands = []string{
	CmdRegister, CmdLogin, CmdGet, CmdLogout, CmdWhoAmI, CmdPing, CmdQuit, CmdRefresh, CmdPasswd, CmdJWKS,
	CmdUsers, CmdUser, CmdSetRole, CmdDisable, CmdEnable, CmdDelete, CmdUnlock, CmdRevoke,
}

// AdminCommands are the commands only admins may use.
var AdminCommands = []string{CmdUsers, CmdUser, CmdSetRole, CmdDisable, CmdEnable, CmdDelete, CmdUnlock, CmdRevoke}

// Paging of USERS.
const (
	DefaultUsersLimit = 100
	MaxUsersLimit     = 1000
)

// Login modes.
const (
	ModeSession = "session"
	ModeToken   = "token"
)

// Resources that GET knows.
const (
	ResourceProtected = "protected"
	ResourceAdmin     = "admin"
)

// Request is one parsed request line.
type Request struct {
	// ID is the raw JSON of the request's id (a string or a number), echoed
	// back verbatim in the response; nil when the request had none.
	ID  json.RawMessage
	Cmd string // canonical upper-case command name

	Username string
	Password string
	Mode     string // ModeSession or ModeToken; LOGIN only
	Resource string // GET only
	// Token is the optional bearer token of any command that acts as a
	// user (GET, LOGOUT, WHOAMI, PASSWD and the admin commands).
	Token string

	RefreshToken string // REFRESH
	OldPassword  string // PASSWD
	NewPassword  string // PASSWD
	All          bool   // LOGOUT: end every session and token of the user
	Role         string // SETROLE
	Limit        int    // USERS: page size
	After        string // USERS: list users after this name

	Inline bool // the line used the inline (netcat) form
}

// wireRequest is the JSON shape of a request. Pointers tell a missing field
// from an empty one where that matters.
type wireRequest struct {
	ID       json.RawMessage `json:"id"`
	Cmd      *string         `json:"cmd"`
	Username string          `json:"username"`
	Password string          `json:"password"`
	Mode     string          `json:"mode"`
	Resource string          `json:"resource"`
	Token    string          `json:"token"`

	RefreshToken string `json:"refresh_token"`
	OldPassword  string `json:"old_password"`
	NewPassword  string `json:"new_password"`
	All          bool   `json:"all"`
	Role         string `json:"role"`
	Limit        int    `json:"limit"`
	After        string `json:"after"`
}

// Bounds on how much of an unknown command or resource is echoed in the
// error message.
const (
	maxEchoedCommand  = 32
	maxEchoedResource = 64
)

// echo returns s for quoting in an error message: at most max bytes (cut
// at a rune boundary, then "..."), and anything unprintable shown as "?",
// so the message stays short and readable whatever a client sent.
func echo(s string, max int) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		if i >= max {
			b.WriteString("...")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// TrimLine removes the line terminator ("\n" or "\r\n") and surrounding
// spaces and tabs. An empty result is a blank line, which carries no
// request and gets no response.
func TrimLine(line []byte) []byte {
	return bytes.Trim(line, " \t\r\n")
}

// ParseRequest parses one request line (without its terminator; see
// TrimLine). A line that starts with "{" is JSON, anything else is the
// inline form. On error the returned Request still carries the ID when it
// could be read, so the error response can echo it.
func ParseRequest(line []byte) (Request, *Error) {
	return parseRequest(line, nil)
}

// Parser parses request lines as ParseRequest does, for one connection.
// It remembers the last inline token it saw: a client sends the same
// token with request after request, and converting 400 bytes into a new
// string each time would be the largest cost of a token GET. The zero
// value is ready to use; a Parser is not safe for concurrent use.
type Parser struct {
	lastToken string
}

// Parse parses one request line; see ParseRequest.
func (p *Parser) Parse(line []byte) (Request, *Error) {
	return parseRequest(line, p)
}

// token returns b as a string, the previous one if it has the same bytes.
func (p *Parser) token(b []byte) string {
	if p == nil {
		return string(b)
	}
	if string(b) != p.lastToken { // compiled without a conversion
		p.lastToken = string(b)
	}
	return p.lastToken
}

func parseRequest(line []byte, p *Parser) (Request, *Error) {
	if !utf8.Valid(line) {
		return Request{}, Errorf(CodeBadRequest, "request is not valid UTF-8")
	}
	if len(line) > 0 && line[0] == '{' {
		return parseJSON(line)
	}
	return parseInline(line, p)
}

func parseJSON(line []byte) (Request, *Error) {
	var w wireRequest
	// json.Unmarshal refuses anything after the first value, which is what
	// makes a second object on the same line a 400.
	if err := json.Unmarshal(line, &w); err != nil {
		req := Request{ID: salvageID(line)}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return req, Errorf(CodeBadRequest, "field %q must be a %s", typeErr.Field, expectedType(typeErr.Field))
		}
		return Request{}, Errorf(CodeBadRequest, "malformed JSON request: %s", jsonErrorText(err))
	}
	req := Request{
		Username:     w.Username,
		Password:     w.Password,
		Mode:         w.Mode,
		Resource:     w.Resource,
		Token:        w.Token,
		RefreshToken: w.RefreshToken,
		OldPassword:  w.OldPassword,
		NewPassword:  w.NewPassword,
		All:          w.All,
		Role:         w.Role,
		Limit:        w.Limit,
		After:        w.After,
	}
	if id, ok := validID(w.ID); ok {
		req.ID = id
	} else {
		return req, Errorf(CodeBadRequest, "id must be a string or a number")
	}
	if w.Cmd == nil || *w.Cmd == "" {
		return req, Errorf(CodeBadRequest, "missing cmd")
	}
	cmd, perr := canonicalCommand(*w.Cmd)
	if perr != nil {
		return req, perr
	}
	req.Cmd = cmd
	return req, req.validate()
}

// validID accepts a JSON string or number (null counts as absent).
func validID(raw json.RawMessage) (json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return raw, true
	}
	return nil, false
}

// salvageID recovers a valid id from a request that failed to decode
// because of another field, so the error can still be matched to it.
func salvageID(line []byte) json.RawMessage {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(line, &probe) != nil {
		return nil
	}
	id, _ := validID(probe.ID)
	return id
}

func expectedType(field string) string {
	switch field {
	case "id":
		return "string or a number"
	case "all":
		return "boolean"
	case "limit":
		return "number"
	}
	return "string"
}

// jsonErrorText shortens encoding/json's messages to what helps a client.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return strings.TrimPrefix(syn.Error(), "json: ")
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "request must be a JSON object"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func canonicalCommand(name string) (string, *Error) {
	for _, c := range Commands {
		if EqualFoldASCII(name, c) {
			return c, nil
		}
	}
	return "", Errorf(CodeUnknownCommand, "unknown command %s", echo(name, maxEchoedCommand))
}

// usage is the inline syntax of each command, quoted in errors.
var usage = map[string]string{
	CmdRegister: "REGISTER username password",
	CmdLogin:    "LOGIN username password [session|token]",
	CmdGet:      "GET resource [token]",
	CmdLogout:   "LOGOUT [ALL] [token]",
	CmdWhoAmI:   "WHOAMI [token]",
	CmdPing:     "PING",
	CmdQuit:     "QUIT",
	CmdRefresh:  "REFRESH refresh_token",
	CmdPasswd:   "PASSWD old_password new_password [token]",
	CmdJWKS:     "JWKS",
	CmdUsers:    "USERS [limit [after]]",
	CmdUser:     "USER username [token]",
	CmdSetRole:  "SETROLE username user|admin [token]",
	CmdDisable:  "DISABLE username [token]",
	CmdEnable:   "ENABLE username [token]",
	CmdDelete:   "DELETE username [token]",
	CmdUnlock:   "UNLOCK username [token]",
	CmdRevoke:   "REVOKE username [token]",
}

// Usage returns the inline syntax of a canonical command name.
func Usage(cmd string) string { return usage[cmd] }

// EqualFoldASCII is strings.EqualFold for ASCII letters only. Unicode
// folding would take "ſ" (U+017F) for "s" and the Kelvin sign for "k".
func EqualFoldASCII(a, b string) bool { return equalFoldASCII(a, b) }

// maxInlineFields is more than any command takes; a line with more fields
// is a usage error.
const maxInlineFields = 8

// splitInline splits line on runs of spaces and tabs into dst (up to its
// capacity) and returns the fields and how many there were in all.
// Splitting bytes is the same as splitting runes: UTF-8 never uses the
// bytes of a space or a tab inside another character.
func splitInline(line []byte, dst [][]byte) ([][]byte, int) {
	n := 0
	// Without tabs a field ends at the next space, which IndexByte finds
	// many bytes at a time: a 400-byte token is not walked byte by byte.
	noTabs := bytes.IndexByte(line, '\t') < 0
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		if noTabs {
			if k := bytes.IndexByte(line[i:], ' '); k >= 0 {
				j = i + k
			} else {
				j = len(line)
			}
		} else {
			for j < len(line) && line[j] != ' ' && line[j] != '\t' {
				j++
			}
		}
		if len(dst) < cap(dst) {
			dst = append(dst, line[i:j])
		}
		n++
		i = j
	}
	return dst, n
}

// equalFoldASCIIBytes is EqualFoldASCII for a byte slice, without
// converting it.
func equalFoldASCIIBytes(b []byte, s string) bool { return equalFoldASCII(b, s) }

func equalFoldASCII[T string | []byte](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// canonicalCommandBytes is canonicalCommand for a byte slice.
func canonicalCommandBytes(name []byte) (string, *Error) {
	for _, c := range Commands {
		if equalFoldASCIIBytes(name, c) {
			return c, nil
		}
	}
	return canonicalCommand(string(name))
}

// resourceName returns the constant for a known resource name, so the
// common requests allocate nothing; validate refuses the others.
func resourceName(b []byte) string {
	switch {
	case equalFoldASCIIBytes(b, ResourceProtected):
		return ResourceProtected
	case equalFoldASCIIBytes(b, ResourceAdmin):
		return ResourceAdmin
	}
	return string(b)
}

// parseInline splits the line on runs of spaces and tabs (and nothing
// else: a no-break space is part of a password), so inline passwords and
// tokens cannot contain either; the JSON form has no such limit.
func parseInline(line []byte, p *Parser) (Request, *Error) {
	// The fields stay byte slices of the line, kept in an array on the
	// stack; only the ones a command stores become strings, so a request
	// like "GET protected" allocates nothing here.
	var arr [maxInlineFields][]byte
	fields, n := splitInline(line, arr[:0])
	if n == 0 {
		return Request{}, Errorf(CodeBadRequest, "empty request")
	}
	cmd, perr := canonicalCommandBytes(fields[0])
	if perr != nil {
		return Request{}, perr
	}
	req := Request{Cmd: cmd, Inline: true}
	args := fields[1:]
	bad := func() (Request, *Error) {
		return Request{Cmd: cmd, Inline: true}, Errorf(CodeBadRequest, "usage: %s", usage[cmd])
	}
	if n > maxInlineFields {
		return bad()
	}
	switch cmd {
	case CmdRegister:
		if len(args) != 2 {
			return bad()
		}
		req.Username, req.Password = string(args[0]), string(args[1])
	case CmdLogin:
		if len(args) < 2 || len(args) > 3 {
			return bad()
		}
		req.Username, req.Password = string(args[0]), string(args[1])
		if len(args) == 3 {
			req.Mode = string(args[2])
		}
	case CmdGet:
		if len(args) < 1 || len(args) > 2 {
			return bad()
		}
		req.Resource = resourceName(args[0])
		if len(args) == 2 {
			req.Token = p.token(args[1])
		}
	case CmdLogout:
		// "ALL" cannot be a token: tokens have dots.
		if len(args) > 0 && equalFoldASCIIBytes(args[0], "all") {
			req.All = true
			args = args[1:]
		}
		if len(args) > 1 {
			return bad()
		}
		if len(args) == 1 {
			req.Token = p.token(args[0])
		}
	case CmdWhoAmI:
		if len(args) > 1 {
			return bad()
		}
		if len(args) == 1 {
			req.Token = p.token(args[0])
		}
	case CmdPing, CmdQuit, CmdJWKS:
		if len(args) != 0 {
			return bad()
		}
	case CmdRefresh:
		if len(args) != 1 {
			return bad()
		}
		req.RefreshToken = string(args[0])
	case CmdPasswd:
		if len(args) < 2 || len(args) > 3 {
			return bad()
		}
		req.OldPassword, req.NewPassword = string(args[0]), string(args[1])
		if len(args) == 3 {
			req.Token = p.token(args[2])
		}
	case CmdUsers:
		if len(args) > 2 {
			return bad()
		}
		if len(args) > 0 {
			n, err := strconv.Atoi(string(args[0]))
			if err != nil {
				return bad()
			}
			req.Limit = n
		}
		if len(args) == 2 {
			req.After = string(args[1])
		}
	case CmdSetRole:
		if len(args) < 2 || len(args) > 3 {
			return bad()
		}
		req.Username, req.Role = string(args[0]), string(args[1])
		if len(args) == 3 {
			req.Token = p.token(args[2])
		}
	case CmdUser, CmdDisable, CmdEnable, CmdDelete, CmdUnlock, CmdRevoke:
		if len(args) < 1 || len(args) > 2 {
			return bad()
		}
		req.Username = string(args[0])
		if len(args) == 2 {
			req.Token = p.token(args[1])
		}
	}
	return req, req.validate()
}

// validate checks what each command needs, independent of the form the
// request came in.
func (r *Request) validate() *Error {
	switch r.Cmd {
	case CmdRegister, CmdLogin:
		if r.Username == "" {
			return Errorf(CodeBadRequest, "missing username")
		}
		if r.Password == "" {
			return Errorf(CodeBadRequest, "missing password")
		}
		if r.Cmd == CmdLogin {
			switch {
			case r.Mode == "", EqualFoldASCII(r.Mode, ModeSession):
				r.Mode = ModeSession
			case EqualFoldASCII(r.Mode, ModeToken):
				r.Mode = ModeToken
			default:
				return Errorf(CodeBadRequest, "mode must be %q or %q", ModeSession, ModeToken)
			}
		}
	case CmdRefresh:
		if r.RefreshToken == "" {
			return Errorf(CodeBadRequest, "missing refresh_token")
		}
	case CmdPasswd:
		if r.OldPassword == "" {
			return Errorf(CodeBadRequest, "missing old_password")
		}
		if r.NewPassword == "" {
			return Errorf(CodeBadRequest, "missing new_password")
		}
	case CmdUsers:
		switch {
		case r.Limit == 0:
			r.Limit = DefaultUsersLimit
		case r.Limit < 0 || r.Limit > MaxUsersLimit:
			return Errorf(CodeBadRequest, "limit must be 1 to %d", MaxUsersLimit)
		}
	case CmdUser, CmdSetRole, CmdDisable, CmdEnable, CmdDelete, CmdUnlock, CmdRevoke:
		if r.Username == "" {
			return Errorf(CodeBadRequest, "missing username")
		}
		if r.Cmd == CmdSetRole && r.Role != "user" && r.Role != "admin" {
			return Errorf(CodeBadRequest, "role must be \"user\" or \"admin\"")
		}
	case CmdGet:
		if r.Resource == "" {
			return Errorf(CodeBadRequest, "missing resource")
		}
		// The resources are part of the protocol, so an unknown one is a
		// 404 before any authentication is looked at.
		switch {
		case EqualFoldASCII(r.Resource, ResourceProtected):
			r.Resource = ResourceProtected
		case EqualFoldASCII(r.Resource, ResourceAdmin):
			r.Resource = ResourceAdmin
		default:
			return Errorf(CodeNotFound, "unknown resource %s (known: %s, %s)", echo(r.Resource, maxEchoedResource), ResourceProtected, ResourceAdmin)
		}
	}
	return nil
}
