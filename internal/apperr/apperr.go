// Package apperr is the error vocabulary shared by every domain: an error with a code that the
// GraphQL layer maps to `extensions.code`, and helpers to make and unwrap one. Anything that is not an
// *Error is an internal error: its text is logged for the operator, never shown to the client.
package apperr

import (
	"errors"
	"fmt"
)

// Code says what kind of failure an error is. The values are the `extensions.code` of GraphQL errors.
type Code string

const (
	Unauthenticated Code = "UNAUTHENTICATED" // no valid credentials
	Forbidden       Code = "FORBIDDEN"       // valid credentials, not enough rights
	NotFound        Code = "NOT_FOUND"       // unknown id, or an object the viewer may not see
	BadUserInput    Code = "BAD_USER_INPUT"  // arguments the caller can fix (bad cursor, page size)
	Conflict        Code = "CONFLICT"        // the object changed or exists already
	RateLimited     Code = "RATE_LIMITED"    // too many requests; try later
	Internal        Code = "INTERNAL"        // a bug or an outage: details are logged, not returned
)

// Error is a failure the client may be told about: its Message is shown as is.
type Error struct {
	Code    Code
	Message string
	// Field, when set, names the argument at fault (for BAD_USER_INPUT).
	Field string
}

func (e *Error) Error() string { return e.Message }

// New returns an error with the given code and message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a BAD_USER_INPUT error about one argument.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFoundf returns a NOT_FOUND error. Callers use the same message whether the object does not
// exist or belongs to a workspace the viewer cannot see, so that the two cannot be told apart.
func NotFoundf(format string, args ...any) *Error {
	return New(NotFound, format, args...)
}

// CodeOf returns the code of err: that of the first *Error in its chain, else Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// UserError is a problem with a mutation's input that the caller can fix. Mutations return these
// in their payload's userErrors; the codes are the schema's UserErrorCode values.
type UserError struct {
	Field   string // dot-separated path in the input, "" when not about one field
	Message string
	Code    string
}

// Codes of UserError, as in the schema's UserErrorCode enum.
const (
	Required     = "REQUIRED"
	InvalidValue = "INVALID"
	TooLong      = "TOO_LONG"
	TooShort     = "TOO_SHORT"
	Taken        = "TAKEN"
	NotAllowed   = "NOT_ALLOWED"
	Throttled    = "THROTTLED"
)

// UserErrors collects input problems.
type UserErrors []UserError

// Add records a problem with field.
func (u *UserErrors) Add(field, code, format string, args ...any) {
	*u = append(*u, UserError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}
