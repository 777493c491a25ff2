package ops

import (
	"context"
	"errors"
	"sync"
)

// Gate is a process's own part of readiness: not ready while it starts
// (saying what it waits for) and again once it shuts down, so that
// /readyz turns 503 before the process stops taking work; in between the
// dependency check decides. The ops endpoints serve it from the first
// moment, so a platform sees "up, not ready: waiting for …" instead of a
// refused connection or an exit.
type Gate struct {
	mu     sync.Mutex
	reason string    // why not ready; "" when ready
	check  ReadyFunc // the dependency check once ready
}

// NewGate returns a gate that is not ready for reason.
func NewGate(reason string) *Gate { return &Gate{reason: reason} }

// NotReady turns readiness off with a reason (e.g. "shutting down").
func (g *Gate) NotReady(reason string) {
	g.mu.Lock()
	g.reason = reason
	g.mu.Unlock()
}

// Ready turns readiness on; from now on check decides.
func (g *Gate) Ready(check ReadyFunc) {
	g.mu.Lock()
	g.reason, g.check = "", check
	g.mu.Unlock()
}

// Check is the gate as a ReadyFunc for Handler.
func (g *Gate) Check(ctx context.Context) error {
	g.mu.Lock()
	reason, check := g.reason, g.check
	g.mu.Unlock()
	if reason != "" {
		return errors.New(reason)
	}
	if check == nil {
		return nil
	}
	return check(ctx)
}
