package call

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Protocol error codes. An operation may declare more (see [Errors]); a code this side
// does not know counts as [CodeInternal] and is not retryable, whatever the wire says
// about retrying is kept in [Error.Retryable].
const (
	// CodeNotFound: no such operation, or an internal one called from the wire.
	CodeNotFound = "NOT_FOUND"
	// CodeForbidden: the caller lacks a scope the operation requires.
	CodeForbidden = "FORBIDDEN"
	// CodeInvalidInput: the input failed the operation's input schema, or the request
	// payload itself was malformed.
	CodeInvalidInput = "INVALID_INPUT"
	// CodeInvalidOperationType: a subscription called as a query, or the reverse.
	CodeInvalidOperationType = "INVALID_OPERATION_TYPE"
	// CodeInternal: the handler failed, panicked, or the connection closed.
	CodeInternal = "INTERNAL"
	// CodeTimeout: the call ran past its deadline. The only retryable protocol code.
	CodeTimeout = "TIMEOUT"
)

// Error is the error of a failed call, as carried in a call.error envelope. Every
// error the package returns for a failed call is, or wraps, an *Error: use
// [errors.As] and switch on Code, never on Message.
type Error struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// Error returns "call: CODE: message".
func (e *Error) Error() string { return "call: " + e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same Code, so errors.Is(err,
// call.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for [errors.Is]; compare codes, never messages.
var (
	ErrNotFound             = &Error{Code: CodeNotFound}
	ErrForbidden            = &Error{Code: CodeForbidden}
	ErrInvalidInput         = &Error{Code: CodeInvalidInput}
	ErrInvalidOperationType = &Error{Code: CodeInvalidOperationType}
	ErrInternal             = &Error{Code: CodeInternal}
	ErrTimeout              = &Error{Code: CodeTimeout}
)

// Errorf returns an *Error with code and a formatted message. TIMEOUT is retryable;
// set Retryable yourself for a declared code that is.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Retryable: code == CodeTimeout}
}

// protocolCodes are the codes every operation may return without declaring them.
var protocolCodes = map[string]bool{
	CodeNotFound: true, CodeForbidden: true, CodeInvalidInput: true,
	CodeInvalidOperationType: true, CodeInternal: true, CodeTimeout: true,
}

// asError turns any error into the *Error sent on the wire.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// ErrorCode returns the code of the *Error in err's chain, or "" if there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
