package inbank

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// API is the Inbank Smart Rent partner API as a client offers it: *Client,
// and [Guard] around one.
type API interface {
	RentalConditions(ctx context.Context, productCode, identifierType, identifier string) (inbankapi.RentalConditions, error)
	Calculate(ctx context.Context, productCode string, req inbankapi.CalculationRequest) (inbankapi.Calculation, error)
	CreateSession(ctx context.Context, req inbankapi.SessionRequest) (inbankapi.CreatedSession, error)
	Session(ctx context.Context, sessionUUID string) (inbankapi.Session, error)
	AssignAssetIdentifiers(ctx context.Context, productCode, contractUUID string, req inbankapi.AssetIdentifiersRequest) error
	ActivateContract(ctx context.Context, productCode, contractUUID string) error
	Contract(ctx context.Context, contractUUID string) (inbankapi.Contract, error)
}

var _ API = (*Client)(nil)

// Breaker settings: after breakerFailures transient failures in a row a
// shop's calls fail at once for breakerCooldown, then one call probes.
const (
	breakerFailures = 5
	breakerCooldown = 5 * time.Second
)

// GuardOptions tunes [Guard]; the zero value is the production setting.
type GuardOptions struct {
	Concurrency int           // Inbank calls in flight (default 32)
	Cooldown    time.Duration // how long the circuit stays open (default 5 s)
	Logger      *slog.Logger  // a line on each change of the circuit
	Metrics     *Metrics      // smartrent_inbank_circuit_state{shop}
}

// guard wraps one shop's Inbank client with a concurrency budget and a
// circuit breaker (sony/gobreaker). A call refused by either fails with an
// [inbankapi.NotSentError] (transient, certainly not applied), so the input is
// retried later and the handler is free at once for other shops' orders.
type guard struct {
	alias   string
	api     API
	slots   chan struct{}
	breaker *gobreaker.CircuitBreaker[any]
}

// errNotCalled marks a call that never reached Inbank (no free slot, or
// the caller gave up): the breaker does not count it either way, so a
// half-open probe that never ran cannot close the circuit.
var errNotCalled = errors.New("not sent to Inbank")

// Guard limits api to o.Concurrency calls in flight and opens a circuit
// after repeated transient failures.
func Guard(alias string, api API, o GuardOptions) API {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Cooldown <= 0 {
		o.Cooldown = breakerCooldown
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &guard{alias: alias, api: api, slots: make(chan struct{}, o.Concurrency)}
	o.Metrics.circuit(alias, gobreaker.StateClosed)
	g.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        alias,
		MaxRequests: 1, // half-open: one probe
		Timeout:     o.Cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerFailures },
		// Inbank answering a permanent 4xx is Inbank working.
		IsSuccessful: func(err error) bool { return err == nil || !inbankapi.IsTransient(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errNotCalled) },
		OnStateChange: func(shop string, from, to gobreaker.State) {
			o.Metrics.circuit(shop, to)
			level := slog.LevelWarn
			if to == gobreaker.StateClosed {
				level = slog.LevelInfo
			}
			o.Logger.Log(context.Background(), level, "inbank circuit "+to.String(), "shop", shop, "from", from.String())
		},
	})
	return g
}

func (g *guard) refuse(op, why string, after time.Duration) error {
	return &inbankapi.NotSentError{Op: op, Reason: fmt.Sprintf("shop %s: %s", g.alias, why), RetryAfter: after}
}

func guarded[T any](g *guard, ctx context.Context, op string, f func() (T, error)) (T, error) {
	var zero T
	v, err := g.breaker.Execute(func() (any, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", errNotCalled, err)
		}
		wait := time.NewTimer(2 * time.Second)
		defer wait.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-wait.C:
			return nil, fmt.Errorf("too many calls in flight: %w", errNotCalled)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errNotCalled, ctx.Err())
		}
		defer func() { <-g.slots }()
		return f()
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		return zero, g.refuse(op, "circuit open after repeated Inbank failures", breakerCooldown)
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return zero, g.refuse(op, "circuit half-open, a probe is under way", time.Second)
	case errors.Is(err, errNotCalled) && ctx.Err() != nil:
		return zero, ctx.Err()
	case errors.Is(err, errNotCalled):
		return zero, g.refuse(op, "too many calls in flight", time.Second)
	case err != nil:
		return zero, err
	}
	out, _ := v.(T)
	return out, nil
}

func (g *guard) RentalConditions(ctx context.Context, productCode, identifierType, identifier string) (inbankapi.RentalConditions, error) {
	return guarded(g, ctx, OpGetRentalConditions, func() (inbankapi.RentalConditions, error) {
		return g.api.RentalConditions(ctx, productCode, identifierType, identifier)
	})
}

func (g *guard) Calculate(ctx context.Context, productCode string, req inbankapi.CalculationRequest) (inbankapi.Calculation, error) {
	return guarded(g, ctx, OpCalculate, func() (inbankapi.Calculation, error) { return g.api.Calculate(ctx, productCode, req) })
}

func (g *guard) CreateSession(ctx context.Context, req inbankapi.SessionRequest) (inbankapi.CreatedSession, error) {
	return guarded(g, ctx, OpCreateSession, func() (inbankapi.CreatedSession, error) { return g.api.CreateSession(ctx, req) })
}

func (g *guard) Session(ctx context.Context, sessionUUID string) (inbankapi.Session, error) {
	return guarded(g, ctx, OpGetSession, func() (inbankapi.Session, error) { return g.api.Session(ctx, sessionUUID) })
}

func (g *guard) AssignAssetIdentifiers(ctx context.Context, productCode, contractUUID string, req inbankapi.AssetIdentifiersRequest) error {
	_, err := guarded(g, ctx, OpAssignAssetIdentifiers, func() (struct{}, error) {
		return struct{}{}, g.api.AssignAssetIdentifiers(ctx, productCode, contractUUID, req)
	})
	return err
}

func (g *guard) ActivateContract(ctx context.Context, productCode, contractUUID string) error {
	_, err := guarded(g, ctx, OpActivateContract, func() (struct{}, error) {
		return struct{}{}, g.api.ActivateContract(ctx, productCode, contractUUID)
	})
	return err
}

func (g *guard) Contract(ctx context.Context, contractUUID string) (inbankapi.Contract, error) {
	return guarded(g, ctx, OpGetContract, func() (inbankapi.Contract, error) { return g.api.Contract(ctx, contractUUID) })
}
