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
// [Workflow.claimed], the one implementation of claim → call → record.

// facts are what the workflow knows of an order's surroundings now.
func (w *Workflow) facts(o *order.Order, refresh bool) order.Facts {
	f := order.Facts{Now: w.now(), Attempt: w.attemptID(), Settle: w.cfg.ActivationSettle, Refresh: refresh, MaxAttempts: w.cfg.MaxAttempts}
	if sh, ok := w.shops[o.Shop]; ok {
		f.Policy = sh.policy
	}
	return f
}

// step decides the order's next move and makes it; it reports whether it
// changed anything. Moves that only read (the conditions, a contract, a
// session with nothing new) add a fact and decide again. rev 0 is an
// order not stored yet: its first write creates it.
func (w *Workflow) step(ctx context.Context, o *order.Order, rev uint64, refresh bool) (progressed bool, err error) {
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
			return false, nil
		case order.MoveWait:
			return false, wait(m.After, "%s", m.Why)
		case order.MoveUnprocessable:
			return false, unprocessable(m.Err)
		case order.MovePublish:
			return true, w.flush(ctx, o, rev)
		case order.MoveReject:
			from := o.State
			o.Reject(m.Rejection, f.Now)
			return true, w.write(ctx, o, rev, from)
		case order.MoveLoadConditions:
			if err := w.loadConditions(ctx, o, rev, sh, &f); err != nil {
				return false, err
			}
		case order.MoveCreateSession:
			return true, w.createSession(ctx, o, rev, f, sh, m.Insurance)
		case order.MovePriceSession:
			return true, w.priceSession(ctx, o, sh, m.Insurance)
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
					return false, err
				}
			}
			progressed, err := w.readSession(forRefresh(ctx, o), o, rev, sh, f.Now)
			unlock()
			if progressed || err != nil {
				return progressed, err
			}
			f.SessionRead = true
		case order.MoveAssignIdentifiers:
			return true, w.assignIdentifiers(ctx, o, rev, f, sh)
		case order.MoveReadContract:
			k, err := w.readContract(ctx, sh, o.ContractUUID)
			if err != nil {
				return false, err
			}
			f.Contract = &k
		case order.MoveActivate:
			return true, w.activate(ctx, o, rev, f, sh)
		case order.MoveRecordActivated:
			return true, w.recordActivated(ctx, o.Key(), m.Via, true)
		case order.MoveAwaitActivation:
			return w.awaitActivation(ctx, o, sh, m.Via, 0)
		case order.MoveGiveUp:
			return true, w.failAt(ctx, o, rev, m.Step, m.Err)
		default:
			return false, fmt.Errorf("order %s: %w: %v", o.OrderID, errNoMove, m.Kind)
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

// sideEffect is a step with a side effect at Inbank, as [Workflow.claimed]
// runs it.
type sideEffect struct {
	step string
	// claim points at the step's claim in an order.
	claim func(o *order.Order) **order.Claim
	// begin adds to the claim's write (attempt counters, marks); may be nil.
	begin func(o *order.Order, now time.Time)
	// call makes the Inbank call.
	call func(ctx context.Context) error
	// undo adds to the release of the claim after a transient failure;
	// may be nil.
	undo func(o *order.Order, err error)
	// refused records a permanent failure and reports whether it is to be
	// reported (a StepError); nil fails the order at the step (or at the
	// step a *StepError from call names).
	refused  func(o *order.Order, now time.Time) bool
	attempts int // this attempt's number, for order.failed
	// record writes the result; mine tells whether the claim was still
	// this attempt's. errSkip writes nothing: the result is dropped.
	record func(o *order.Order, mine bool, now time.Time) error
	// then runs after the record is written; may be nil.
	then func(ctx context.Context) error
}

// claimed runs a step with a side effect: the claim is written by
// compare-and-set (only its winner calls Inbank), then the call, then the
// result is recorded in the order with the events it implies. What a
// crash between call and record means for each step is in the package
// notes.
func (w *Workflow) claimed(ctx context.Context, o *order.Order, rev uint64, f order.Facts, e sideEffect) error {
	from, key := o.State, o.Key()
	*e.claim(o) = &order.Claim{Owner: f.Attempt, Until: f.Now.Add(w.cfg.ClaimTTL)}
	if e.begin != nil {
		e.begin(o, f.Now)
	}
	if err := w.write(ctx, o, rev, from); err != nil {
		return err // a conflict: Advance looks again
	}
	err := e.call(ctx)
	if herr := w.cfg.Hooks.AfterInbankCall(e.step, o.OrderID); herr != nil {
		return fmt.Errorf("%w: %v", ErrAbandoned, herr)
	}
	mine := func(o *order.Order) bool {
		c := *e.claim(o)
		return c != nil && c.Owner == f.Attempt
	}
	switch {
	case err != nil && inbankapi.IsTransient(err):
		// The claim becomes a hold that nobody owns, until the retry is
		// due: whichever path comes first (the input's redelivery, the
		// reconciler, another input of the order, another bridge) calls
		// Inbank no sooner than the schedule says.
		after := w.retryDelay(err, e.attempts)
		w.releaseClaim(ctx, key, e.step, func(o *order.Order) error {
			if !mine(o) {
				return errSkip
			}
			*e.claim(o) = &order.Claim{Owner: order.RetryHold, Until: w.now().Add(after)}
			if e.undo != nil {
				e.undo(o, err)
			}
			return nil
		})
		return &StepError{Step: e.step, Err: err, After: after}
	case err != nil && e.refused != nil:
		report := false
		_, uerr := w.update(ctx, key, func(o *order.Order) error {
			if mine(o) {
				*e.claim(o) = nil
			}
			report = e.refused(o, w.now())
			return nil
		})
		if uerr != nil {
			// Not recorded: no dead letter for a refusal the state does
			// not show; the delivery is retried and decides again. Not a
			// StepError: those are final unless Inbank's failure is
			// transient.
			return fmt.Errorf("%s: record the refusal: %w", e.step, uerr)
		}
		if !report {
			return nil
		}
		return &StepError{Step: e.step, Err: err}
	case err != nil:
		step, cause, attempts := e.step, err, e.attempts
		var se *StepError
		if errors.As(err, &se) {
			step, cause, attempts = se.Step, se.Err, 1
		}
		return w.fail(ctx, key, step, cause, attempts)
	}
	err = w.record(ctx, key, func(o *order.Order) error {
		m := mine(o)
		if m {
			*e.claim(o) = nil
		}
		return e.record(o, m, w.now())
	})
	if errors.Is(err, errSkip) {
		w.log.WarnContext(ctx, "the step's claim was taken over before its result was recorded; the result is dropped (a session created so expires unpublished)",
			"order_id", o.OrderID, "step", e.step)
		return nil
	}
	if err != nil || e.then == nil {
		return err
	}
	return e.then(ctx)
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

// record writes a result Inbank has now. It is worth retrying for a while
// (a cluster electing a leader): if the claim runs out first, the next
// attempt repeats the call.
func (w *Workflow) record(ctx context.Context, key string, fn func(o *order.Order) error) error {
	return retry.Do(ctx, recordBackoff(w.cfg.ClaimTTL), func(ctx context.Context) error {
		_, err := w.update(ctx, key, fn)
		if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, orderstore.ErrNotFound) {
			return retry.RetryableError(err)
		}
		return err
	})
}

// recordBackoff retries a record for about half a claim's life.
func recordBackoff(claim time.Duration) retry.Backoff {
	return retry.WithMaxDuration(claim/2, retry.WithCappedDuration(time.Second, retry.WithJitterPercent(20, retry.NewExponential(50*time.Millisecond))))
}

// loadConditions reads the model's rental conditions (from the shared
// cache) into the facts.
func (w *Workflow) loadConditions(ctx context.Context, o *order.Order, rev uint64, sh *shop, f *order.Facts) error {
	p := o.Placed
	cond, err := sh.conditions.Get(ctx, o.ProductCode, p.HeroDevice.IdentifierType, p.HeroDevice.Identifier)
	switch {
	case errors.Is(err, inbankapi.ErrNotFound):
		f.NotRentable = true
	case err != nil && inbankapi.IsTransient(err):
		return &StepError{Step: order.StepConditions, Err: err}
	case err != nil:
		return w.failAt(ctx, o, rev, order.StepConditions, err)
	default:
		f.Conditions = &cond
	}
	return nil
}

// failAt fails an order that is in hand at rev (0: not stored yet).
func (w *Workflow) failAt(ctx context.Context, o *order.Order, rev uint64, step string, cause error) error {
	from := o.State
	o.Fail(step, cause, 1, w.now())
	if err := w.write(ctx, o, rev, from); err != nil {
		return err
	}
	w.log.ErrorContext(ctx, "order failed", "order_id", o.OrderID, "step", step, "err", cause)
	return &failedError{err: &StepError{Step: step, Err: cause}}
}

// errNoMove is a move the runner does not know; order.Decide never returns one.
var errNoMove = errors.New("no such move")
