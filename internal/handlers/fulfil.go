package handlers

import (
	"context"
	"errors"
	"fmt"
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

// assignIdentifiers gives the contract the hero device's identifiers
// under a claim. The call is repeatable, so a crash before the record
// only repeats it.
func (w *Workflow) assignIdentifiers(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop) (*StepError, error) {
	ids := slices.Clone(o.Identifiers)
	if err := w.claim(ctx, o, rev, f, order.StepIdentifiers); err != nil {
		return nil, err
	}
	err := inbank.RetryBriefly(ctx, func(ctx context.Context) error {
		return sh.api.AssignAssetIdentifiers(ctx, o.ProductCode, o.ContractUUID, toInbank(ids))
	})
	if err := w.called(order.StepIdentifiers, o.OrderID); err != nil {
		return nil, err
	}
	switch {
	case err != nil && inbankapi.IsTransient(err):
		return w.callFailed(ctx, o, f.Attempt, order.StepIdentifiers, err)
	case err != nil:
		return nil, w.identifiersRefused(ctx, o.Key(), f.Attempt, ids, err)
	}
	_, err = w.record(ctx, o.Key(), func(o *order.Order) bool {
		o.RecordIdentifiers(f.Attempt, ids, w.now())
		return true
	})
	return nil, err
}

// identifiersRefused records that Inbank refused these identifiers: they
// are forgotten, so that a corrected shipment can follow, and the input
// ends with Inbank's refusal (the order goes on).
func (w *Workflow) identifiersRefused(ctx context.Context, key, owner string, ids []events.AssetIdentifier, cause error) error {
	report := false
	_, _, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		report = o.RefuseIdentifiers(owner, ids, w.now())
		return true, nil
	})
	switch {
	case err != nil:
		// Not recorded: no dead letter for a refusal the state does not
		// show; the delivery is retried and decides again. Not a
		// StepError: those are final unless Inbank's failure is
		// transient.
		return fmt.Errorf("%s: record the refusal: %w", order.StepIdentifiers, err)
	case !report:
		return nil
	}
	return &StepError{Step: order.StepIdentifiers, Err: cause}
}

// activate calls the activation under a claim (order.Decide has read the
// contract first when an earlier attempt may have reached Inbank), then
// awaits the contract's activation.
func (w *Workflow) activate(ctx context.Context, o *order.Order, rev uint64, f order.Facts, sh *shop) (*StepError, error) {
	if err := w.claim(ctx, o, rev, f, order.StepActivate); err != nil {
		return nil, err
	}
	err := sh.api.ActivateContract(ctx, o.ProductCode, o.ContractUUID)
	var api *inbankapi.APIError
	switch {
	case err == nil:
		w.cfg.Metrics.activationCalled()
	case errors.As(err, &api) && api.ErrorCode == "CONTRACT_ALREADY_ACTIVATED":
		err = nil // an earlier attempt did it: record and await
	}
	if err := w.called(order.StepActivate, o.OrderID); err != nil {
		return nil, err
	}
	if err != nil {
		return w.callFailed(ctx, o, f.Attempt, order.StepActivate, err)
	}
	key := o.Key()
	if _, err := w.record(ctx, key, func(o *order.Order) bool { o.RecordActivationCalled(w.now()); return true }); err != nil {
		return nil, err
	}
	called, _, err := w.cfg.Store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	_, failure, err := w.awaitActivation(ctx, &called, sh, events.ActivatedViaAPI, w.cfg.ActivationPoll)
	return failure, err
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
func (w *Workflow) awaitActivation(ctx context.Context, o *order.Order, sh *shop, via string, poll time.Duration) (bool, *StepError, error) {
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
		return true, nil, w.recordActivated(ctx, o.Key(), via, via == events.ActivatedViaAPI)
	}
	if err != nil && ctx.Err() == nil {
		var se *StepError
		if errors.As(err, &se) && !inbankapi.IsTransient(se.Err) {
			failure, err := w.fail(ctx, o.Key(), order.StepContract, se.Err, 1)
			return false, failure, err
		}
		return false, nil, err
	}
	return false, nil, nil
}

// recordActivated ends the order with exactly one contract.activated.
func (w *Workflow) recordActivated(ctx context.Context, key, via string, called bool) error {
	o, activated, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		return o.MarkActivated(via, called, w.now()), nil
	})
	if activated {
		w.log.InfoContext(ctx, "contract activated", "order_id", o.OrderID, "via", via)
	}
	return err
}
