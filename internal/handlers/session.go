package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
)

// createSession claims the step, then calls the calculation and the
// session creation together (see "Calculation and session together").
func (w *Workflow) createSession(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop, insurance bool) error {
	p := o.Placed
	validUntil := f.Now.Add(sh.ttl).Truncate(time.Second)
	var (
		created inbankapi.CreatedSession
		calc    inbankapi.Calculation
		calcErr error
	)
	o.IdentifierTypes = f.Conditions.AssetIdentifierTypes
	return w.claimed(ctx, o, rev, f, sideEffect{
		step:     order.StepSession,
		claim:    func(o *order.Order) **order.Claim { return &o.SessionClaim },
		attempts: o.SessionAttempts + 1,
		begin: func(o *order.Order, now time.Time) {
			o.SessionAttempts++
			o.Note(now, fmt.Sprintf("creating session (attempt %d)", o.SessionAttempts))
		},
		call: func(ctx context.Context) error {
			calcDone := make(chan struct{})
			go func() {
				defer close(calcDone)
				calcErr = inbank.RetryBriefly(ctx, func(ctx context.Context) error {
					var err error
					calc, err = sh.api.Calculate(ctx, o.ProductCode, order.CalculationRequest(p, insurance))
					return err
				})
			}()
			var err error
			created, err = sh.api.CreateSession(ctx, order.SessionRequest(o, p, insurance, validUntil, w.cfg.Tokens.URL(w.cfg.CallbackBaseURL, o.Shop, o.OrderID)))
			<-calcDone
			if err == nil && calcErr != nil && !inbankapi.IsTransient(calcErr) {
				w.log.WarnContext(ctx, "Inbank refused the calculation of a session it created; the order fails and the session expires unpublished",
					"order_id", o.OrderID, "session_uuid", created.UUID)
				return &StepError{Step: order.StepCalculate, Err: calcErr}
			}
			return err
		},
		record: func(o *order.Order, mine bool, now time.Time) error {
			if o.State != order.StateNew || !mine {
				// Our claim expired and another attempt took over: this
				// session stays unpublished and expires at Inbank.
				return errSkip
			}
			o.RecordCreatedSession(created, validUntil, now)
			if calcErr != nil {
				o.Note(now, "session created; not published until Inbank's calculation answers")
				return nil
			}
			o.PublishSession(order.QuoteOf(calc), now)
			return nil
		},
		then: func(ctx context.Context) error {
			if calcErr != nil {
				// Transient: the retried delivery only prices this session.
				return &StepError{Step: order.StepCalculate, Err: calcErr}
			}
			w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", created.UUID)
			return nil
		},
	})
}

// priceSession prices a recorded, unpublished session and publishes it.
// The calculation has no side effect: no claim.
func (w *Workflow) priceSession(ctx context.Context, o *order.Order, sh *shop, insurance bool) error {
	var calc inbankapi.Calculation
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		var err error
		calc, err = sh.api.Calculate(ctx, o.ProductCode, order.CalculationRequest(o.Placed, insurance))
		return err
	})
	if err != nil {
		if inbankapi.IsTransient(err) {
			return &StepError{Step: order.StepCalculate, Err: err}
		}
		return w.fail(ctx, o.Key(), order.StepCalculate, err, 1)
	}
	sessionUUID := o.SessionUUID
	err = w.record(ctx, o.Key(), func(o *order.Order) error {
		if o.State != order.StateNew || o.SessionUUID != sessionUUID {
			return errSkip
		}
		o.PublishSession(order.QuoteOf(calc), w.now())
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil // published meanwhile
	}
	if err == nil {
		w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", sessionUUID)
	}
	return err
}

// readSession re-reads the session and records what it brought. It
// reports false when the read showed nothing new.
func (w *Workflow) readSession(ctx context.Context, o *order.Order, rev uint64, sh *shop, now time.Time) (bool, error) {
	var s inbankapi.Session
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		var err error
		s, err = sh.api.Session(ctx, o.SessionUUID)
		return err
	})
	if err != nil {
		if inbankapi.IsTransient(err) {
			return false, &StepError{Step: order.StepReadSession, Err: err}
		}
		return false, w.fail(ctx, o.Key(), order.StepReadSession, err, 1)
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
		return false, nil
	}
	if o.SessionStatus != prev {
		w.log.InfoContext(ctx, "session status changed", "order_id", o.OrderID, "from", prev, "to", o.SessionStatus)
	}
	return true, w.write(ctx, o, rev, from)
}
