// Package protocol defines authline's wire protocol: request parsing (JSON
// and inline forms), response and event encoding, and the error codes with
// their statuses. It does no networking and no storage; PROTOCOL.md in this
// directory documents the same contract for humans.
package protocol

import (
	"errors"
	"fmt"
	"time"
)

// Proto is the protocol version announced in the greeting.
const Proto = 1

// Code is a machine-readable error code sent in the "error" field.
// Every code maps to exactly one status (see Code.Status).
type Code string

// The error codes of protocol v1.
const (
	CodeBadRequest         Code = "bad_request"
	CodeUnknownCommand     Code = "unknown_command"
	CodeInvalidCredentials Code = "invalid_credentials"
	CodeUnauthenticated    Code = "unauthenticated"
	CodeInvalidToken       Code = "invalid_token"
	CodeTokenExpired       Code = "token_expired"
	CodeForbidden          Code = "forbidden"
	CodeNotFound           Code = "not_found"
	CodeConflict           Code = "conflict"
	CodeLineTooLong        Code = "line_too_long"
	CodeRateLimited        Code = "rate_limited"
	CodeInternal           Code = "internal"
	CodeUnavailable        Code = "unavailable"
)

// Success statuses.
const (
	StatusOK      = 200
	StatusCreated = 201
)

// Status returns the status number that goes with the code on the wire.
// Unknown codes are internal errors.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest, CodeUnknownCommand:
		return 400
	case CodeInvalidCredentials, CodeUnauthenticated, CodeInvalidToken, CodeTokenExpired:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeConflict:
		return 409
	case CodeLineTooLong:
		return 413
	case CodeRateLimited:
		return 429
	case CodeUnavailable:
		return 503
	default:
		return 500
	}
}

// Codes lists every code of protocol v1, for documentation and tests.
var Codes = []Code{
	CodeBadRequest, CodeUnknownCommand, CodeInvalidCredentials, CodeUnauthenticated,
	CodeInvalidToken, CodeTokenExpired, CodeForbidden, CodeNotFound, CodeConflict,
	CodeLineTooLong, CodeRateLimited, CodeInternal, CodeUnavailable,
}

// Error is an error that goes onto the wire: a code (and so a status) and a
// message for humans. Err, if set, is the underlying cause; it is for logs
// and errors.Is/As and is never sent to the client.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when positive, is sent as data.retry_after (whole
	// seconds, rounded up): how long the client should wait (429, 503).
	RetryAfter time.Duration
	Err        error
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message whose cause is err.
func Wrap(code Code, msg string, err error) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the wire status of the error's code.
func (e *Error) Status() int { return e.Code.Status() }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &protocol.Error{Code: protocol.CodeConflict}) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// AsError converts any error into an *Error: an *Error anywhere in the chain
// is returned as is, anything else becomes an internal error whose message
// reveals nothing about the cause.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}
