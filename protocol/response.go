package protocol

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Data is the "data" object of a successful response. Implementations
// append their JSON encoding to dst without reflection, keeping the
// response path allocation-free.
type Data interface {
	AppendJSON(dst []byte) []byte
}

// Response is one response line.
type Response struct {
	ID      json.RawMessage // echoed request id; omitted when nil
	Status  int
	Error   Code // empty on success
	Message string
	Data    Data // omitted when nil
}

// OK reports whether the response is a success.
func (r *Response) OK() bool { return r.Error == "" }

// ErrorResponse builds the response for a wire error.
func ErrorResponse(id json.RawMessage, e *Error) Response {
	r := Response{ID: id, Status: e.Status(), Error: e.Code, Message: e.Message}
	if e.RetryAfter > 0 {
		r.Data = RetryData{RetryAfter: int64((e.RetryAfter + time.Second - 1) / time.Second)}
	}
	return r
}

// RetryData is the data of an error that says when to try again.
type RetryData struct {
	RetryAfter int64 `json:"retry_after"` // seconds
}

func (d RetryData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"retry_after":`...)
	dst = strconv.AppendInt(dst, d.RetryAfter, 10)
	return append(dst, '}')
}

// AppendResponse appends the response as one JSON line, "\n" included.
func AppendResponse(dst []byte, r *Response) []byte {
	dst = append(dst, '{')
	if len(r.ID) > 0 {
		dst = append(dst, `"id":`...)
		dst = append(dst, r.ID...)
		dst = append(dst, ',')
	}
	if r.OK() {
		dst = append(dst, `"ok":true,"status":`...)
	} else {
		dst = append(dst, `"ok":false,"status":`...)
	}
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	if !r.OK() {
		dst = append(dst, `,"error":`...)
		dst = AppendString(dst, string(r.Error))
	}
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, r.Message)
	if r.Data != nil {
		dst = append(dst, `,"data":`...)
		dst = r.Data.AppendJSON(dst)
	}
	return append(dst, '}', '\n')
}

// AppendHello appends the greeting event line.
func AppendHello(dst []byte, version string) []byte {
	dst = append(dst, `{"event":"hello","server":"authlined","version":`...)
	dst = AppendString(dst, version)
	dst = append(dst, `,"proto":`...)
	dst = strconv.AppendInt(dst, Proto, 10)
	return append(dst, '}', '\n')
}

// Reasons for the bye event.
const (
	ByeQuit        = "quit"
	ByeLineTooLong = "line_too_long"
	ByeShutdown    = "shutdown"
	ByeIdleTimeout = "idle_timeout"
	ByeLineTimeout = "line_timeout"
)

// Reasons for the session_ended event.
const (
	SessionEndedLogoutAll       = "logout_all"
	SessionEndedPasswordChanged = "password_changed"
	SessionEndedRevoked         = "revoked"
	SessionEndedDisabled        = "disabled"
	SessionEndedDeleted         = "deleted"
)

// AppendSessionEnded appends the event sent to a connection whose session
// was ended from elsewhere.
func AppendSessionEnded(dst []byte, reason string) []byte {
	dst = append(dst, `{"event":"session_ended","reason":`...)
	dst = AppendString(dst, reason)
	return append(dst, '}', '\n')
}

// AppendBye appends the event sent before the server closes a connection.
func AppendBye(dst []byte, reason string) []byte {
	dst = append(dst, `{"event":"bye","reason":`...)
	dst = AppendString(dst, reason)
	return append(dst, '}', '\n')
}

// UserData is the data of REGISTER.
type UserData struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

func (d *UserData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"username":`...)
	dst = AppendString(dst, d.Username)
	dst = append(dst, `,"role":`...)
	dst = AppendString(dst, d.Role)
	return append(dst, '}')
}

// LoginData is the data of LOGIN, REFRESH and PASSWD. The token fields
// are set in token mode only.
type LoginData struct {
	Username         string    `json:"username"`
	Role             string    `json:"role"`
	Mode             string    `json:"mode"`
	Token            string    `json:"token,omitempty"`
	TokenType        string    `json:"token_type,omitempty"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	ExpiresIn        int64     `json:"expires_in,omitempty"` // seconds
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
}

func (d *LoginData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"username":`...)
	dst = AppendString(dst, d.Username)
	dst = append(dst, `,"role":`...)
	dst = AppendString(dst, d.Role)
	dst = append(dst, `,"mode":`...)
	dst = AppendString(dst, d.Mode)
	if d.Token != "" {
		dst = append(dst, `,"token":`...)
		dst = AppendString(dst, d.Token)
		dst = append(dst, `,"token_type":`...)
		dst = AppendString(dst, d.TokenType)
		dst = append(dst, `,"expires_at":"`...)
		dst = d.ExpiresAt.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, `","expires_in":`...)
		dst = strconv.AppendInt(dst, d.ExpiresIn, 10)
		if d.RefreshToken != "" {
			dst = append(dst, `,"refresh_token":`...)
			dst = AppendString(dst, d.RefreshToken)
			dst = append(dst, `,"refresh_expires_at":"`...)
			dst = d.RefreshExpiresAt.UTC().AppendFormat(dst, time.RFC3339)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// ResourceData is the data of GET.
type ResourceData struct {
	Resource string `json:"resource"`
	Username string `json:"username"`
	Role     string `json:"role"`
	Content  string `json:"content"`
}

func (d *ResourceData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"resource":`...)
	dst = AppendString(dst, d.Resource)
	dst = append(dst, `,"username":`...)
	dst = AppendString(dst, d.Username)
	dst = append(dst, `,"role":`...)
	dst = AppendString(dst, d.Role)
	dst = append(dst, `,"content":`...)
	dst = AppendString(dst, d.Content)
	return append(dst, '}')
}

// Ways a request can be authenticated, reported by WHOAMI.
const (
	AuthSession = "session"
	AuthToken   = "token"
)

// WhoAmIData is the data of WHOAMI.
type WhoAmIData struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Auth     string `json:"auth"` // AuthSession or AuthToken
}

func (d *WhoAmIData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"username":`...)
	dst = AppendString(dst, d.Username)
	dst = append(dst, `,"role":`...)
	dst = AppendString(dst, d.Role)
	dst = append(dst, `,"auth":`...)
	dst = AppendString(dst, d.Auth)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Like encoding/json it escapes
// control characters, U+2028 and U+2029, and replaces invalid UTF-8 with
// U+FFFD, so the output is always valid JSON on one line.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Message is a line received from a server, decoded by clients: either a
// response or an event (Event non-empty).
type Message struct {
	Event   string          `json:"event,omitempty"`
	Server  string          `json:"server,omitempty"`
	Version string          `json:"version,omitempty"`
	Proto   int             `json:"proto,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	OK      bool            `json:"ok"`
	Status  int             `json:"status"`
	Error   Code            `json:"error,omitempty"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Err returns the response's error as an *Error, or nil on success. Its
// RetryAfter is the response's data.retry_after, when the server sent one.
func (m *Message) Err() *Error {
	if m.OK {
		return nil
	}
	e := &Error{Code: m.Error, Message: m.Message}
	var rd RetryData
	if len(m.Data) > 0 && json.Unmarshal(m.Data, &rd) == nil && rd.RetryAfter > 0 {
		e.RetryAfter = time.Duration(rd.RetryAfter) * time.Second
	}
	return e
}

// UserInfo describes an account to admins (USER, USERS and the admin
// commands that change one).
type UserInfo struct {
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	LastLogin time.Time `json:"last_login,omitzero"` // omitted if never
	Disabled  bool      `json:"disabled"`
	// Throttled: failed logins currently make LOGIN wait (USER only).
	Throttled  bool  `json:"throttled"`
	RetryAfter int64 `json:"retry_after,omitempty"` // seconds, when throttled
}

func (d *UserInfo) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"username":`...)
	dst = AppendString(dst, d.Username)
	dst = append(dst, `,"role":`...)
	dst = AppendString(dst, d.Role)
	dst = append(dst, `,"created_at":"`...)
	dst = d.CreatedAt.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, '"')
	if !d.LastLogin.IsZero() {
		dst = append(dst, `,"last_login":"`...)
		dst = d.LastLogin.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"disabled":`...)
	dst = strconv.AppendBool(dst, d.Disabled)
	dst = append(dst, `,"throttled":`...)
	dst = strconv.AppendBool(dst, d.Throttled)
	if d.RetryAfter > 0 {
		dst = append(dst, `,"retry_after":`...)
		dst = strconv.AppendInt(dst, d.RetryAfter, 10)
	}
	return append(dst, '}')
}

// UsersData is the data of USERS: one page of accounts in username order.
// Next, when set, is the "after" of the next page.
type UsersData struct {
	Users []UserInfo `json:"users"`
	Next  string     `json:"next,omitempty"`
}

func (d *UsersData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"users":[`...)
	for i := range d.Users {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = d.Users[i].AppendJSON(dst)
	}
	dst = append(dst, ']')
	if d.Next != "" {
		dst = append(dst, `,"next":`...)
		dst = AppendString(dst, d.Next)
	}
	return append(dst, '}')
}

// JWK is one public key of a JSON Web Key Set (RFC 7517): an Ed25519 key
// (RFC 8037) that verifies tokens whose header has its kid and alg EdDSA.
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // the public key, base64url without padding
	Kid string `json:"kid"`
	Alg string `json:"alg"` // "EdDSA"
	Use string `json:"use"` // "sig"
}

// JWKSData is the data of JWKS, a JSON Web Key Set: {"keys":[…]}, an
// empty array when the server has no public keys (HS256 only).
type JWKSData struct {
	Keys []JWK `json:"keys"`
}

func (d *JWKSData) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"keys":[`...)
	for i := range d.Keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		k := &d.Keys[i]
		dst = append(dst, `{"kty":`...)
		dst = AppendString(dst, k.Kty)
		dst = append(dst, `,"crv":`...)
		dst = AppendString(dst, k.Crv)
		dst = append(dst, `,"x":`...)
		dst = AppendString(dst, k.X)
		dst = append(dst, `,"kid":`...)
		dst = AppendString(dst, k.Kid)
		dst = append(dst, `,"alg":`...)
		dst = AppendString(dst, k.Alg)
		dst = append(dst, `,"use":`...)
		dst = AppendString(dst, k.Use)
		dst = append(dst, '}')
	}
	return append(dst, ']', '}')
}
