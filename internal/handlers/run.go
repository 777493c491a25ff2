package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sethvargo/go-retry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// This file carries out the moves [order.Decide] chooses: reads, writes and
// Inbank calls. Steps with a side effect at Inbank all go through
// claim → call → record (see claim, below).

// facts are what the workflow knows of an order's surroundings now.
func (w *Workflow) facts(o *order.Order, refresh bool) order.Facts {
	f := order.Facts{Now: w.now(), Attempt: w.attemptID(), Settle: w.cfg.ActivationSettle, Refresh: refresh, MaxAttempts: w.cfg.MaxAttempts}
	if sh, ok := w.shops[o.Shop]; ok {
		f.Policy = sh.policy
	}
	return f
}

// step decides the order's next move and makes it; it reports whether it
// changed anything, and the failure the order ended in if the move failed
// it. Moves that only read (the conditions, a contract, a session with
// nothing new) add a fact and decide again. rev 0 is an order not stored
// yet: its first write creates it.
func (w *Workflow) step(ctx context.Context, o *order.Order, rev uint64, refresh bool) (progressed bool, failure *StepError, err error) {
	ctx, span := w.cfg.Tracer.Start(ctx, "step "+o.State, trace.WithAttributes(attribute.String("smartrent.order_id", o.OrderID)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	f := w.facts(o, refresh)
	sh := w.shops[o.Shop] // set whenever a move needs it: order.Decide refuses an unconfigured shop
	for {
		m := order.Decide(o, f)
		switch m.Kind {
		case order.MoveRest:
			return false, nil, nil
		case order.MoveWait:
			return false, nil, wait(m.After, "%s", m.Why)
		case order.MoveUnprocessable:
			return false, nil, unprocessable(m.Err)
		case order.MovePublish:
			return true, nil, w.flush(ctx, o, rev)
		case order.MoveReject:
			from := o.State
			o.Reject(m.Rejection, f.Now)
			return true, nil, w.write(ctx, o, rev, from)
		case order.MoveLoadConditions:
			failure, err := w.loadConditions(ctx, o, rev, sh, &f)
			if failure != nil || err != nil {
				return true, failure, err
			}
		case order.MoveCreateSession:
			failure, err := w.createSession(ctx, o, rev, f, sh, m.Insurance)
			return true, failure, err
		case order.MovePriceSession:
			failure, err := w.priceSession(ctx, o, sh, m.Insurance)
			return true, failure, err
		case order.MoveReadSession:
			unlock := w.reads.lock(o.Key())
			if rev != 0 && !f.Refresh {
				// Another read of this order may have been recorded while
				// this one waited for the lock: decide again on it.
				if _, now, err := w.cfg.Store.LoadFresh(ctx, o.Key()); err != nil || now != rev {
					unlock()
					if err == nil {
						err = orderstore.ErrConflict
					}
					return false, nil, err
				}
			}
			progressed, failure, err := w.readSession(forRefresh(ctx, o), o, rev, sh, f.Now)
			unlock()
			if progressed || failure != nil || err != nil {
				return progressed, failure, err
			}
			f.SessionRead = true
		case order.MoveAssignIdentifiers:
			failure, err := w.assignIdentifiers(ctx, o, rev, f, sh)
			return true, failure, err
		case order.MoveReadContract:
			k, err := w.readContract(ctx, sh, o.ContractUUID)
			if err != nil {
				return false, nil, err
			}
			f.Contract = &k
		case order.MoveActivate:
			failure, err := w.activate(ctx, o, rev, f, sh)
			return true, failure, err
		case order.MoveRecordActivated:
			return true, nil, w.recordActivated(ctx, o.Key(), m.Via, true)
		case order.MoveAwaitActivation:
			return w.awaitActivation(ctx, o, sh, m.Via, 0)
		case order.MoveGiveUp:
			failure, err := w.failAt(ctx, o, rev, m.Step, m.Err)
			return true, failure, err
		default:
			return false, nil, fmt.Errorf("order %s: %w: %v", o.OrderID, errNoMove, m.Kind)
		}
	}
}

// forRefresh is the context of a session read that serves a callback's
// refresh request: in the callback's trace, with its trace context for
// what the read writes, even when another input's Advance makes the read.
func forRefresh(ctx context.Context, o *order.Order) context.Context {
	tp := o.RefreshTraceParent
	if !o.RefreshRequested || tp == "" || tp == traceParentFrom(ctx) {
		return ctx
	}
	return withTraceParent(telemetry.ContextWithTraceParent(ctx, tp), tp)
}

// write stores the order (creating it when rev is 0: it was never
// stored) and reports the transition once it is stored.
func (w *Workflow) write(ctx context.Context, o *order.Order, rev uint64, from string) error {
	var err error
	if rev == 0 {
		_, err = w.cfg.Store.Create(ctx, o.Key(), *o)
	} else {
		_, err = w.cfg.Store.Save(ctx, o.Key(), *o, rev)
	}
	if err == nil {
		w.observe(from, o)
	}
	return err
}

// observe counts a stored transition: the metrics follow the states, so
// no step counts for itself.
func (w *Workflow) observe(from string, o *order.Order) {
	if o.State == from {
		return
	}
	w.cfg.Metrics.state(o.State)
	switch o.State {
	case order.StatePending:
		w.cfg.Metrics.sessionCreated()
	case order.StateActivated:
		if o.SessionAt != nil && o.ActivatedAt != nil {
			w.cfg.Metrics.activated(o.ActivatedAt.Sub(*o.SessionAt).Seconds())
		}
	}
}

// The steps with a side effect at Inbank (session creation, identifiers,
// activation) each run claim → call → record with the three functions
// below: claim writes this attempt's claim by compare-and-set (only its
// winner calls Inbank), the step makes its call and gets Inbank's answer,
// then either record writes the result in the order with the events it
// implies, or callFailed holds the step for its retry or fails the order.
// What a crash between call and record means for each step is in the
// package notes.

// claim writes this attempt's claim of step (with the attempt counted) by
// compare-and-set. A conflict means another attempt moved the order
// first: Advance looks again.
func (w *Workflow) claim(ctx context.Context, o *order.Order, rev uint64, f order.Facts, step string) error {
	from := o.State
	o.TakeClaim(step, f.Attempt, f.Now.Add(w.cfg.ClaimTTL), f.Now)
	return w.write(ctx, o, rev, from)
}

// called follows every claimed call, before anything is recorded: the
// crash tests stop a step there (Hooks.AfterInbankCall).
func (w *Workflow) called(step, orderID string) error {
	if err := w.cfg.Hooks.AfterInbankCall(step, orderID); err != nil {
		return fmt.Errorf("%w: %v", ErrAbandoned, err)
	}
	return nil
}

// callFailed ends owner's claimed call of step that Inbank did not take.
// A transient failure holds the step until its retry is due: whichever
// path comes first (the input's redelivery, the reconciler, another input
// of the order, another bridge) calls Inbank no sooner than the schedule
// says. Any other fails the order, at the step a *StepError from the call
// names (a calculation refused beside a created session) or at step.
func (w *Workflow) callFailed(ctx context.Context, o *order.Order, owner, step string, cause error) (*StepError, error) {
	attempts := o.Attempts(step)
	if err := stopped(ctx, cause); err != nil {
		// Nothing is written: a hold for a retry would need the context
		// that is gone, and the claim expires by itself.
		return nil, fmt.Errorf("order %s, step %s: %w", o.OrderID, step, err)
	}
	if inbankapi.IsTransient(cause) {
		after := w.retryDelay(cause, attempts)
		w.holdForRetry(ctx, o.Key(), step, owner, after, certainlyNotApplied(cause))
		return nil, &StepError{Step: step, Err: cause, After: after}
	}
	var se *StepError
	if errors.As(cause, &se) {
		step, cause, attempts = se.Step, se.Err, 1
	}
	return w.fail(ctx, o.Key(), step, cause, attempts)
}

// retryDelay is how long a step is held after its attempt n failed
// transiently: as the consumers wait, Inbank's Retry-After or
// RetryBase·2^(n−1), capped at RetryMax.
func (w *Workflow) retryDelay(err error, attempt int) time.Duration {
	if ra := inbankapi.RetryAfter(err); ra > 0 {
		return streams.AskedDelay(ra)
	}
	return streams.RetryDelay(uint64(max(attempt, 1)), w.cfg.RetryBase, w.cfg.RetryMax)
}

// record writes a result Inbank has now: change records it in the order
// and reports false when there is nothing to write (the claim was taken
// over meanwhile, the result is in already). It is worth retrying for a
// while (a cluster electing a leader): if the claim runs out first, the
// next attempt repeats the call.
func (w *Workflow) record(ctx context.Context, key string, change func(o *order.Order) bool) (recorded bool, err error) {
	err = retry.Do(ctx, recordBackoff(w.cfg.ClaimTTL), func(ctx context.Context) error {
		_, written, err := w.update(ctx, key, func(o *order.Order) (bool, error) { return change(o), nil })
		recorded = written
		if err != nil && !errors.Is(err, orderstore.ErrNotFound) {
			return retry.RetryableError(err)
		}
		return err
	})
	return recorded, err
}

// recordBackoff retries a record for about half a claim's life.
func recordBackoff(claim time.Duration) retry.Backoff {
	return retry.WithMaxDuration(claim/2, retry.WithCappedDuration(time.Second, retry.WithJitterPercent(20, retry.NewExponential(50*time.Millisecond))))
}

// loadConditions reads the model's rental conditions (from the shared
// cache) into the facts.
func (w *Workflow) loadConditions(ctx context.Context, o *order.Order, rev uint64, sh *shop, f *order.Facts) (*StepError, error) {
	p := o.Placed
	cond, err := sh.conditions.Get(ctx, o.ProductCode, p.HeroDevice.IdentifierType, p.HeroDevice.Identifier)
	switch {
	case errors.Is(err, inbankapi.ErrNotFound):
		f.NotRentable = true
	case err != nil && inbankapi.IsTransient(err):
		return nil, &StepError{Step: order.StepConditions, Err: err}
	case err != nil:
		return w.failAt(ctx, o, rev, order.StepConditions, err)
	default:
		f.Conditions = &cond
	}
	return nil, nil
}

// failAt fails an order that is in hand at rev (0: not stored yet).
func (w *Workflow) failAt(ctx context.Context, o *order.Order, rev uint64, step string, cause error) (*StepError, error) {
	from := o.State
	o.Fail(step, cause, 1, w.now())
	if err := w.write(ctx, o, rev, from); err != nil {
		return nil, err
	}
	w.log.ErrorContext(ctx, "order failed", "order_id", o.OrderID, "step", step, "err", cause)
	return &StepError{Step: step, Err: cause}, nil
}

// errNoMove is a move the runner does not know; order.Decide never returns one.
var errNoMove = errors.New("no such move")
