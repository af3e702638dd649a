package protocol_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/authline/authline/protocol"
)

// wantStatus is the documented status of every code (PROTOCOL.md).
var wantStatus = map[protocol.Code]int{
	"bad_request":         400,
	"unknown_command":     400,
	"invalid_credentials": 401,
	"unauthenticated":     401,
	"invalid_token":       401,
	"token_expired":       401,
	"forbidden":           403,
	"not_found":           404,
	"conflict":            409,
	"line_too_long":       413,
	"rate_limited":        429,
	"internal":            500,
	"unavailable":         503,
}

func TestCodeStatus(t *testing.T) {
	if len(protocol.Codes) != len(wantStatus) {
		t.Errorf("Codes has %d codes, want %d: %v", len(protocol.Codes), len(wantStatus), protocol.Codes)
	}
	seen := make(map[protocol.Code]bool)
	for _, c := range protocol.Codes {
		if seen[c] {
			t.Errorf("code %s listed twice in Codes", c)
		}
		seen[c] = true
		want, ok := wantStatus[c]
		if !ok {
			t.Errorf("code %s is not documented", c)
			continue
		}
		if got := c.Status(); got != want {
			t.Errorf("%s.Status() = %d, want %d", c, got, want)
		}
		e := protocol.Errorf(c, "x")
		if got := e.Status(); got != want {
			t.Errorf("(*Error{%s}).Status() = %d, want %d", c, got, want)
		}
		if r := protocol.ErrorResponse(nil, e); r.Status != want || r.Error != c || r.OK() {
			t.Errorf("ErrorResponse(%s) = %+v, want status %d, error %s, not OK", c, r, want, c)
		}
	}
	for c := range wantStatus {
		if !seen[c] {
			t.Errorf("documented code %s missing from Codes", c)
		}
	}
	for _, c := range []protocol.Code{"", "nope", "BAD_REQUEST"} {
		if got := c.Status(); got != 500 {
			t.Errorf("Code(%q).Status() = %d, want 500", c, got)
		}
	}
	if protocol.StatusOK != 200 || protocol.StatusCreated != 201 {
		t.Errorf("StatusOK, StatusCreated = %d, %d; want 200, 201", protocol.StatusOK, protocol.StatusCreated)
	}
	if protocol.Proto != 1 {
		t.Errorf("Proto = %d, want 1", protocol.Proto)
	}
}

func TestErrorf(t *testing.T) {
	e := protocol.Errorf(protocol.CodeNotFound, "unknown resource %q", "x")
	if e.Code != protocol.CodeNotFound || e.Message != `unknown resource "x"` || e.Err != nil {
		t.Errorf("Errorf = %+v", e)
	}
	if got, want := e.Error(), `not_found: unknown resource "x"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	cause := errors.New("disk on fire")
	w := protocol.Wrap(protocol.CodeUnavailable, "store unavailable, try again", cause)
	if got, want := w.Error(), "unavailable: store unavailable, try again: disk on fire"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(w, cause) || errors.Unwrap(w) != cause {
		t.Errorf("Wrap does not unwrap to its cause")
	}
}

func TestAsError(t *testing.T) {
	if protocol.AsError(nil) != nil {
		t.Errorf("AsError(nil) != nil")
	}

	pe := protocol.Errorf(protocol.CodeConflict, "username is already taken")
	for _, err := range []error{
		pe,
		fmt.Errorf("register: %w", pe),
		fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", pe)),
		errors.Join(errors.New("other"), pe),
	} {
		if got := protocol.AsError(err); got != pe {
			t.Errorf("AsError(%v) = %v, want the *Error in the chain", err, got)
		}
	}

	secret := errors.New(`sqlite: open /var/lib/authline/authline.db: password=hunter2`)
	for _, err := range []error{secret, fmt.Errorf("store: %w", secret)} {
		got := protocol.AsError(err)
		if got.Code != protocol.CodeInternal || got.Status() != 500 {
			t.Errorf("AsError(%v) = %+v, want internal/500", err, got)
		}
		if got.Message != "internal error" {
			t.Errorf("AsError message = %q, want %q", got.Message, "internal error")
		}
		if strings.Contains(got.Message, "hunter2") || strings.Contains(got.Message, "sqlite") {
			t.Errorf("AsError leaks the cause: %q", got.Message)
		}
		// The wire form leaks nothing either.
		r := protocol.ErrorResponse(nil, got)
		if line := string(protocol.AppendResponse(nil, &r)); strings.Contains(line, "hunter2") {
			t.Errorf("response leaks the cause: %s", line)
		}
		// The cause stays available for logs.
		if !errors.Is(got, secret) {
			t.Errorf("AsError lost the cause")
		}
	}
}

func TestErrorIs(t *testing.T) {
	pe := protocol.Errorf(protocol.CodeConflict, "username is already taken")
	wrapped := fmt.Errorf("register alice: %w", pe)
	for _, tc := range []struct {
		target error
		want   bool
	}{
		{&protocol.Error{Code: protocol.CodeConflict}, true},
		{&protocol.Error{Code: protocol.CodeConflict, Message: "username is already taken"}, true},
		{&protocol.Error{Code: protocol.CodeConflict, Message: "something else"}, false},
		{&protocol.Error{Code: protocol.CodeNotFound}, false},
		{&protocol.Error{Code: protocol.CodeInternal}, false},
		{errors.New("username is already taken"), false},
	} {
		if got := errors.Is(wrapped, tc.target); got != tc.want {
			t.Errorf("errors.Is(wrapped conflict, %v) = %v, want %v", tc.target, got, tc.want)
		}
	}
	// A cause below an *Error is still reachable.
	cause := errors.New("store: unavailable")
	w := fmt.Errorf("get user: %w", protocol.Wrap(protocol.CodeUnavailable, "store unavailable, try again", cause))
	if !errors.Is(w, cause) {
		t.Errorf("errors.Is does not reach the cause of a wrapped *Error")
	}
	if !errors.Is(w, &protocol.Error{Code: protocol.CodeUnavailable}) {
		t.Errorf("errors.Is(code-only target) = false for a wrapped unavailable error")
	}
	var got *protocol.Error
	if !errors.As(w, &got) || got.Code != protocol.CodeUnavailable {
		t.Errorf("errors.As = %v, %v", got, got != nil)
	}
}
