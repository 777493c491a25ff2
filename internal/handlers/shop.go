package handlers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbank"
)

// ShopConfig is one more Inbank shop the workflow serves, by alias. The
// default shop is the one of Config's top-level fields.
type ShopConfig struct {
	Inbank      Inbank
	Conditions  *Conditions   // default: a private cache
	ProductCode string        // default product code of its orders
	Policy      string        // default: Config.Policy
	SessionTTL  time.Duration // default: Config.SessionTTL
	// Concurrency bounds this shop's Inbank calls in flight (default 32),
	// so one shop's slow or failing Inbank cannot take every handler.
	Concurrency int
}

// shop is a configured shop with its guard.
type shop struct {
	alias       string
	api         Inbank
	conditions  *Conditions
	productCode string
	policy      string
	ttl         time.Duration
}

func (w *Workflow) shopOf(alias string) (*shop, error) {
	s, ok := w.shops[alias]
	if !ok {
		return nil, fmt.Errorf("shop %q is not configured", alias)
	}
	return s, nil
}

// NormalizeShop maps the default shop's names to "".
func NormalizeShop(alias string) string {
	if alias == "default" {
		return ""
	}
	return alias
}

// Breaker settings: after breakerFailures transient failures in a row a
// shop's calls fail at once for breakerCooldown, then one call probes.
const (
	breakerFailures = 5
	breakerCooldown = 5 * time.Second
)

// guard wraps one shop's Inbank client with a concurrency budget and a
// circuit breaker. A call refused by either answers like Inbank's 503 (it
// did not reach Inbank), so the input is retried later and the handler
// is free at once for other shops' orders.
type guard struct {
	alias string
	api   Inbank
	slots chan struct{}
	now   func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// Guard limits api to concurrency calls in flight and opens a circuit
// after repeated transient failures.
func Guard(alias string, api Inbank, concurrency int) Inbank {
	if concurrency <= 0 {
		concurrency = 32
	}
	return &guard{alias: alias, api: api, slots: make(chan struct{}, concurrency), now: time.Now}
}

func (g *guard) refuse(op, why string, after time.Duration) error {
	return &inbank.APIError{Op: op, Status: 503, ErrorCode: "LOCAL_SHOP_GUARD", Message: fmt.Sprintf("shop %s: %s (not sent to Inbank)", g.alias, why), RetryAfter: after}
}

func (g *guard) enter(ctx context.Context, op string) error {
	g.mu.Lock()
	now := g.now()
	if now.Before(g.openUntil) {
		after := g.openUntil.Sub(now)
		g.mu.Unlock()
		return g.refuse(op, "circuit open after repeated Inbank failures", after)
	}
	if !g.openUntil.IsZero() {
		if g.probing {
			g.mu.Unlock()
			return g.refuse(op, "circuit half-open, a probe is under way", time.Second)
		}
		g.probing = true
	}
	g.mu.Unlock()
	wait := time.NewTimer(2 * time.Second)
	defer wait.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-wait.C:
		g.done(nil)
		return g.refuse(op, "too many calls in flight", time.Second)
	case <-ctx.Done():
		g.done(nil)
		return ctx.Err()
	}
}

func (g *guard) leave(err error) {
	<-g.slots
	g.done(err)
}

func (g *guard) done(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.probing = false
	if err != nil && inbank.IsTransient(err) {
		g.failures++
		if g.failures >= breakerFailures {
			g.openUntil = g.now().Add(breakerCooldown)
		}
		return
	}
	g.failures, g.openUntil = 0, time.Time{}
}

func guarded[T any](g *guard, ctx context.Context, op string, f func() (T, error)) (T, error) {
	var zero T
	if err := g.enter(ctx, op); err != nil {
		return zero, err
	}
	v, err := f()
	g.leave(err)
	return v, err
}

func (g *guard) RentalConditions(ctx context.Context, productCode, identifierType, identifier string) (inbank.RentalConditions, error) {
	return guarded(g, ctx, inbank.OpGetRentalConditions, func() (inbank.RentalConditions, error) {
		return g.api.RentalConditions(ctx, productCode, identifierType, identifier)
	})
}

func (g *guard) Calculate(ctx context.Context, productCode string, req inbank.CalculationRequest) (inbank.Calculation, error) {
	return guarded(g, ctx, inbank.OpCalculate, func() (inbank.Calculation, error) { return g.api.Calculate(ctx, productCode, req) })
}

func (g *guard) CreateSession(ctx context.Context, req inbank.SessionRequest) (inbank.CreatedSession, error) {
	return guarded(g, ctx, inbank.OpCreateSession, func() (inbank.CreatedSession, error) { return g.api.CreateSession(ctx, req) })
}

func (g *guard) Session(ctx context.Context, sessionUUID string) (inbank.Session, error) {
	return guarded(g, ctx, inbank.OpGetSession, func() (inbank.Session, error) { return g.api.Session(ctx, sessionUUID) })
}

func (g *guard) AssignAssetIdentifiers(ctx context.Context, productCode, contractUUID string, req inbank.AssetIdentifiersRequest) error {
	_, err := guarded(g, ctx, inbank.OpAssignAssetIdentifiers, func() (struct{}, error) {
		return struct{}{}, g.api.AssignAssetIdentifiers(ctx, productCode, contractUUID, req)
	})
	return err
}

func (g *guard) ActivateContract(ctx context.Context, productCode, contractUUID string) error {
	_, err := guarded(g, ctx, inbank.OpActivateContract, func() (struct{}, error) {
		return struct{}{}, g.api.ActivateContract(ctx, productCode, contractUUID)
	})
	return err
}

func (g *guard) Contract(ctx context.Context, contractUUID string) (inbank.Contract, error) {
	return guarded(g, ctx, inbank.OpGetContract, func() (inbank.Contract, error) { return g.api.Contract(ctx, contractUUID) })
}
