package handlers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
)

func toInbank(ids []events.AssetIdentifier) inbankapi.AssetIdentifiersRequest {
	req := inbankapi.AssetIdentifiersRequest{}
	for _, id := range ids {
		req.AssetIdentifiers = append(req.AssetIdentifiers, inbankapi.AssetIdentifier(id))
	}
	return req
}

// assignIdentifiers gives the contract the hero device's identifiers. The
// call is repeatable, so a crash before the record only repeats it.
func (w *Workflow) assignIdentifiers(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop) error {
	ids := slices.Clone(o.Identifiers)
	return w.claimed(ctx, o, rev, f, sideEffect{
		step:  order.StepIdentifiers,
		claim: func(o *order.Order) **order.Claim { return &o.IdentifiersClaim },
		call: func(ctx context.Context) error {
			return inbank.RetryBriefly(ctx, func(ctx context.Context) error {
				return sh.api.AssignAssetIdentifiers(ctx, o.ProductCode, o.ContractUUID, toInbank(ids))
			})
		},
		// Inbank refused these identifiers: forget them, so that a
		// corrected shipment can follow, and report the failure.
		refused: func(o *order.Order, now time.Time) bool { return o.RefuseIdentifiers(ids, now) },
		record: func(o *order.Order, _ bool, now time.Time) error {
			o.RecordIdentifiers(ids, now)
			return nil
		},
	})
}

// activate calls the activation under a claim; order.Decide has read the
// contract first when an earlier attempt may have reached Inbank.
func (w *Workflow) activate(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop) error {
	key := o.Key()
	return w.claimed(ctx, o, rev, f, sideEffect{
		step:     order.StepActivate,
		claim:    func(o *order.Order) **order.Claim { return &o.ActivationClaim },
		attempts: o.ActivationAttempts + 1,
		begin:    (*order.Order).BeginActivation,
		call: func(ctx context.Context) error {
			err := sh.api.ActivateContract(ctx, o.ProductCode, o.ContractUUID)
			var api *inbankapi.APIError
			switch {
			case err == nil:
				w.cfg.Metrics.activationCalled()
			case errors.As(err, &api) && api.ErrorCode == "CONTRACT_ALREADY_ACTIVATED":
				return nil // an earlier attempt did it: record and await
			}
			return err
		},
		undo: func(o *order.Order, err error) {
			if certainlyNotApplied(err) {
				// Inbank did not act (429/502–504, or never sent): the
				// attempt is certain, so the retry calls again soon.
				// Otherwise there was no answer and it may have been
				// applied: the mark stays, and the contract is read
				// before any new call.
				o.ActivationUncertain = nil
			}
		},
		record: func(o *order.Order, _ bool, now time.Time) error {
			o.RecordActivationCalled(now)
			return nil
		},
		then: func(ctx context.Context) error {
			o, _, err := w.cfg.Store.Load(ctx, key)
			if err != nil {
				return err
			}
			_, err = w.awaitActivation(ctx, &o, sh, events.ActivatedViaAPI, w.cfg.ActivationPoll)
			return err
		},
	})
}

func (w *Workflow) readContract(ctx context.Context, sh *shop, contractUUID string) (inbankapi.Contract, error) {
	var k inbankapi.Contract
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		var err error
		k, err = sh.api.Contract(ctx, contractUUID)
		return err
	})
	if err != nil {
		return k, &StepError{Step: order.StepContract, Err: err}
	}
	return k, nil
}

// awaitActivation reads the contract, polling with backoff for up to poll,
// and records the activation once Inbank shows it. Past poll, the order
// waits for the next reconciliation.
func (w *Workflow) awaitActivation(ctx context.Context, o *order.Order, sh *shop, via string, poll time.Duration) (bool, error) {
	var k inbankapi.Contract
	var err error
	if poll <= 0 {
		k, err = w.readContract(ctx, sh, o.ContractUUID)
	} else {
		pctx, cancel := context.WithTimeout(ctx, poll)
		defer cancel()
		b := retry.WithCappedDuration(time.Second, retry.NewExponential(50*time.Millisecond))
		err = retry.Do(pctx, b, func(ctx context.Context) error {
			var err error
			k, err = w.readContract(ctx, sh, o.ContractUUID)
			if err != nil {
				return err
			}
			if k.Status != inbankapi.ContractActivated {
				return retry.RetryableError(errors.New("not activated yet"))
			}
			return nil
		})
		if pctx.Err() != nil && ctx.Err() == nil {
			err = nil // past the poll: reconciliation keeps checking
		}
	}
	if k.Status == inbankapi.ContractActivated {
		return true, w.recordActivated(ctx, o.Key(), via, via == events.ActivatedViaAPI)
	}
	if err != nil && ctx.Err() == nil {
		var se *StepError
		if errors.As(err, &se) && !inbankapi.IsTransient(se.Err) {
			return false, w.fail(ctx, o.Key(), order.StepContract, se.Err, 1)
		}
		return false, err
	}
	return false, nil
}

// recordActivated ends the order with exactly one contract.activated.
func (w *Workflow) recordActivated(ctx context.Context, key, via string, called bool) error {
	_, err := w.update(ctx, key, func(o *order.Order) error {
		if !o.MarkActivated(via, called, w.now()) {
			return errSkip
		}
		w.log.InfoContext(ctx, "contract activated", "order_id", o.OrderID, "via", via)
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}
