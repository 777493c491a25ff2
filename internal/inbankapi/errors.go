package inbankapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors matched by [*APIError] through errors.Is.
var (
	ErrUnauthorized = errors.New("inbank: unauthorized")
	ErrForbidden    = errors.New("inbank: forbidden")
	ErrNotFound     = errors.New("inbank: not found")
	ErrRejected     = errors.New("inbank: request rejected") // 400 and 422
	ErrRateLimited  = errors.New("inbank: rate limited")
	ErrUnavailable  = errors.New("inbank: unavailable")  // 502, 503, 504
	ErrServer       = errors.New("inbank: server error") // 500 and other 5xx
)

// APIError is an answer from Inbank other than 2xx.
type APIError struct {
	Op         string        // operation, e.g. "create_session"
	Status     int           // HTTP status
	Message    string        // "message" of the body, or a short excerpt of a non-JSON body
	ErrorCode  string        // "errorCode" of 400/422 bodies, e.g. ASSET_MODEL_NOT_FOUND
	RetryAfter time.Duration // parsed Retry-After header, 0 if none
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "inbank %s: HTTP %d", e.Op, e.Status)
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, " %s", e.ErrorCode)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: 429 and
// 502–504. Every other status, 500 included, is permanent: the engineering
// rules allow retries only for these.
func (e *APIError) Retryable() bool {
	switch e.Status {
	case 429, 502, 503, 504:
		return true
	}
	return false
}

// Is maps the status to the package's sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == 401
	case ErrForbidden:
		return e.Status == 403
	case ErrNotFound:
		return e.Status == 404
	case ErrRejected:
		return e.Status == 400 || e.Status == 422
	case ErrRateLimited:
		return e.Status == 429
	case ErrUnavailable:
		return e.Status >= 502 && e.Status <= 504
	case ErrServer:
		return e.Status >= 500 && !(e.Status >= 502 && e.Status <= 504)
	}
	return false
}

// TransportError is a request that got no HTTP answer: connection refused,
// reset, timeout. It is always retryable.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("inbank %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// Retryable is always true: the request may not even have arrived.
func (e *TransportError) Retryable() bool { return true }

// IsTransient reports whether err is worth retrying: a transport failure or
// timeout, an API answer of 429 or 502–504, or a call not sent (a local
// guard refused it). Validation errors and other API answers are permanent.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	var ns *NotSentError
	if errors.As(err, &ns) {
		return true
	}
	var tr *TransportError
	if errors.As(err, &tr) {
		return true
	}
	// A network failure not wrapped in a TransportError, matched by the
	// method every net and url error has: this package imports no
	// networking.
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// RetryAfter returns the delay Inbank asked for in Retry-After, or 0.
func RetryAfter(err error) time.Duration {
	var api *APIError
	if errors.As(err, &api) {
		return api.RetryAfter
	}
	var ns *NotSentError
	if errors.As(err, &ns) {
		return ns.RetryAfter
	}
	return 0
}

// NotSentError is a call refused before it was sent to Inbank (a shop's
// concurrency budget or circuit breaker). Inbank did not act, so it is
// transient and certain: repeating it cannot repeat a side effect. It is
// no answer of Inbank's and carries no HTTP status (it once posed as a
// 503, and order.failed reported an Inbank status Inbank never sent).
type NotSentError struct {
	Op, Reason string
	RetryAfter time.Duration
}

func (e *NotSentError) Error() string {
	return fmt.Sprintf("inbank %s: not sent: %s", e.Op, e.Reason)
}
