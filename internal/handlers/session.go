package handlers

import (
	"context"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
)

// createSession claims the step, then calls the calculation and the
// session creation together (see "Calculation and session together"),
// and records the session.
func (w *Workflow) createSession(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop, insurance bool) (*StepError, error) {
	o.RecordConditions(*f.Conditions)
	if err := w.claim(ctx, o, rev, f, order.StepSession); err != nil {
		return nil, err
	}
	validUntil := f.Now.Add(sh.ttl).Truncate(time.Second)
	created, quote, calcErr, err := w.createPricedSession(ctx, o, sh, insurance, validUntil)
	if err := w.called(order.StepSession, o.OrderID); err != nil {
		return nil, err
	}
	if err != nil {
		return w.callFailed(ctx, o, f.Attempt, order.StepSession, err)
	}
	recorded, err := w.record(ctx, o.Key(), func(o *order.Order) bool {
		return o.RecordSession(f.Attempt, created, validUntil, quote, w.now())
	})
	switch {
	case err != nil:
		return nil, err
	case !recorded:
		w.log.WarnContext(ctx, "the step's claim was taken over before its result was recorded; the result is dropped (a session created so expires unpublished)",
			"order_id", o.OrderID, "step", order.StepSession)
		return nil, nil
	case calcErr != nil:
		// Transient: the retried delivery only prices this session.
		return nil, &StepError{Step: order.StepCalculate, Err: calcErr}
	}
	w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", created.UUID)
	return nil, nil
}

// createPricedSession makes the session creation and the calculation at
// once. quote is nil when the calculation failed transiently (calcErr): the
// session is recorded and priced later. A calculation Inbank refused
// beside a created session fails the order at the calculation (err is a
// *StepError naming it); the session expires unpublished.
func (w *Workflow) createPricedSession(ctx context.Context, o *order.Order, sh *shop, insurance bool, validUntil time.Time) (created inbankapi.CreatedSession, quote *events.Quote, calcErr, err error) {
	type calculation struct {
		calc inbankapi.Calculation
		err  error
	}
	calculated := make(chan calculation, 1)
	w.beside.run(func() {
		calc, err := w.calculate(ctx, o, sh, insurance)
		calculated <- calculation{calc, err}
	})
	created, err = sh.api.CreateSession(ctx, order.SessionRequest(o, o.Placed, insurance, validUntil, w.cfg.Tokens.URL(w.cfg.CallbackBaseURL, o.Shop, o.OrderID)))
	c := <-calculated
	calc, calcErr := c.calc, c.err
	switch {
	case err != nil:
		return created, nil, calcErr, err
	case calcErr != nil && !inbankapi.IsTransient(calcErr):
		w.log.WarnContext(ctx, "Inbank refused the calculation of a session it created; the order fails and the session expires unpublished",
			"order_id", o.OrderID, "session_uuid", created.UUID)
		return created, nil, calcErr, &StepError{Step: order.StepCalculate, Err: calcErr}
	case calcErr != nil:
		return created, nil, calcErr, nil
	}
	q := order.QuoteOf(calc)
	return created, &q, nil, nil
}

// calculate prices the order's rental (a read: retried briefly).
func (w *Workflow) calculate(ctx context.Context, o *order.Order, sh *shop, insurance bool) (inbankapi.Calculation, error) {
	var calc inbankapi.Calculation
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		var err error
		calc, err = sh.api.Calculate(ctx, o.ProductCode, order.CalculationRequest(o.Placed, insurance))
		return err
	})
	return calc, err
}

// priceSession prices a recorded, unpublished session and publishes it.
// The calculation has no side effect: no claim.
func (w *Workflow) priceSession(ctx context.Context, o *order.Order, sh *shop, insurance bool) (*StepError, error) {
	calc, err := w.calculate(ctx, o, sh, insurance)
	if err != nil {
		if inbankapi.IsTransient(err) {
			return nil, &StepError{Step: order.StepCalculate, Err: err}
		}
		return w.fail(ctx, o.Key(), order.StepCalculate, err, 1)
	}
	sessionUUID, quote := o.SessionUUID, order.QuoteOf(calc)
	published, err := w.record(ctx, o.Key(), func(o *order.Order) bool { return o.PriceSession(sessionUUID, quote, w.now()) })
	if published {
		w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", sessionUUID)
	}
	return nil, err
}

// readSession re-reads the session and records what it brought. It
// reports false when the read showed nothing new.
func (w *Workflow) readSession(ctx context.Context, o *order.Order, rev uint64, sh *shop, now time.Time) (bool, *StepError, error) {
	var s inbankapi.Session
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		var err error
		s, err = sh.api.Session(ctx, o.SessionUUID)
		return err
	})
	if err != nil {
		if inbankapi.IsTransient(err) {
			return false, nil, &StepError{Step: order.StepReadSession, Err: err}
		}
		failure, err := w.fail(ctx, o.Key(), order.StepReadSession, err, 1)
		return false, failure, err
	}
	if !order.KnownSessionStatus(s.Status) {
		w.log.WarnContext(ctx, "unknown session status from Inbank; ignored", "order_id", o.OrderID, "status", s.Status)
	} else if s.Status != o.SessionStatus && !o.SessionForward(s.Status) {
		w.log.InfoContext(ctx, "session status would move backwards; ignored", "order_id", o.OrderID, "stored", o.SessionStatus, "read", s.Status)
	}
	from, prev := o.State, o.SessionStatus
	if tp := traceParentFrom(ctx); tp != "" {
		o.TraceParent = tp // the events the read causes join the trace that asked for it
	}
	if !o.ApplySession(s, now) {
		return false, nil, nil
	}
	if o.SessionStatus != prev {
		w.log.InfoContext(ctx, "session status changed", "order_id", o.OrderID, "from", prev, "to", o.SessionStatus)
	}
	return true, nil, w.write(ctx, o, rev, from)
}
