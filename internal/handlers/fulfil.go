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
)

// fulfil moves a granted order towards activation: by the portal (path B)
// or by identifiers and activation through the API (path A). checkContract
// reads the contract even when nothing new arrived (reconciliation).
func (w *Workflow) fulfil(ctx context.Context, o *Order, rev uint64, checkContract bool) (bool, error) {
	if o.ContractUUID == "" {
		return false, nil // granted but no contract yet: the next read brings it
	}
	sh, err := w.shopOf(o.Shop)
	if err != nil {
		return false, unprocessable(err)
	}
	portal := sh.policy == PolicyPortal ||
		(o.SessionStatus == inbank.SessionCompleted && o.ActivationAttempts == 0 && !o.ActivationCalled)
	switch {
	case portal:
		if !checkContract && o.SessionStatus != inbank.SessionCompleted {
			return false, nil
		}
		return w.awaitActivation(ctx, o, rev, events.ActivatedViaPortal, 0)
	case o.ActivationCalled:
		if !checkContract {
			return false, nil
		}
		return w.awaitActivation(ctx, o, rev, events.ActivatedViaAPI, 0)
	case len(o.Identifiers) > 0 && !slices.Equal(o.Identifiers, o.IdentifiersAssigned):
		return true, w.assignIdentifiers(ctx, sh, o, rev)
	case activationDue(o, sh.policy):
		return true, w.activate(ctx, sh, o, rev)
	}
	return false, nil
}

// activationDue: identifiers are with Inbank and the device has reached
// the point the policy names.
func activationDue(o *Order, policy string) bool {
	if len(o.IdentifiersAssigned) == 0 {
		return false
	}
	switch policy {
	case PolicyOnShipment:
		return o.ShippedAt != nil || o.DeliveredAt != nil
	case PolicyOnDelivery:
		return o.DeliveredAt != nil
	}
	return false
}

func toInbank(ids []events.AssetIdentifier) inbank.AssetIdentifiersRequest {
	req := inbank.AssetIdentifiersRequest{}
	for _, id := range ids {
		req.AssetIdentifiers = append(req.AssetIdentifiers, inbank.AssetIdentifier(id))
	}
	return req
}

// assignIdentifiers gives the contract the hero device's identifiers. The
// call is repeatable, so a crash before the record only repeats it.
func (w *Workflow) assignIdentifiers(ctx context.Context, sh *shop, o *Order, rev uint64) error {
	now := w.now()
	attempt := w.attemptID()
	if err := heldElsewhere(o.IdentifiersClaim, attempt, now, "identifier assignment"); err != nil {
		return err
	}
	o.IdentifiersClaim = w.claim(attempt, now)
	if _, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev); err != nil {
		return err
	}
	release := func(o *Order) {
		if o.IdentifiersClaim != nil && o.IdentifiersClaim.Owner == attempt {
			o.IdentifiersClaim = nil
		}
	}
	ids := slices.Clone(o.Identifiers)
	err := shortRetry(ctx, func(ctx context.Context) error {
		return sh.api.AssignAssetIdentifiers(ctx, o.ProductCode, o.ContractUUID, toInbank(ids))
	})
	if herr := w.cfg.Hooks.AfterInbankCall(StepIdentifiers, o.OrderID); herr != nil {
		return fmt.Errorf("%w: %v", ErrAbandoned, herr)
	}
	if err != nil {
		if inbank.IsTransient(err) {
			w.releaseClaim(ctx, o.Key(), StepIdentifiers, func(o *Order) error { release(o); return nil })
			return &StepError{Step: StepIdentifiers, Err: err}
		}
		refused := true
		_, uerr := w.update(ctx, o.Key(), func(o *Order) error {
			release(o)
			if o.State != StateGranted || slices.Equal(o.IdentifiersAssigned, ids) {
				refused = false // the order moved on meanwhile: nothing to report
				return nil
			}
			// Inbank refused these identifiers: forget them, so a
			// corrected shipment can follow, and report the failure.
			o.Identifiers = nil
			o.note(w.now(), "identifiers refused by Inbank")
			return nil
		})
		if uerr != nil {
			// Not recorded: no dead letter for a refusal the state does
			// not show; the delivery is retried and decides again.
			return fmt.Errorf("%s: record the refused identifiers: %w", StepIdentifiers, uerr) // not a StepError: those are final unless Inbank's failure is transient
		}
		if !refused {
			return nil
		}
		return &StepError{Step: StepIdentifiers, Err: err}
	}
	_, err = w.update(ctx, o.Key(), func(o *Order) error {
		release(o)
		if slices.Equal(o.IdentifiersAssigned, ids) {
			return nil
		}
		o.IdentifiersAssigned = ids
		w.enqueue(o, events.TypeIdentifiersAssigned, identifiersKey(ids), events.IdentifiersAssigned{
			OrderID: o.OrderID, Shop: o.Shop, ContractUUID: o.ContractUUID, AssetIdentifiers: ids,
		})
		o.note(w.now(), "identifiers assigned")
		return nil
	})
	return err
}

func identifiersKey(ids []events.AssetIdentifier) string {
	k := ""
	for _, id := range ids {
		k += id.IdentifierType + ":" + id.Identifier + ";"
	}
	return k
}

// activate calls activation once: claimed, and after reading the contract
// when an earlier attempt may have reached Inbank.
func (w *Workflow) activate(ctx context.Context, sh *shop, o *Order, rev uint64) error {
	now := w.now()
	attempt := w.attemptID()
	if err := heldElsewhere(o.ActivationClaim, attempt, now, "activation"); err != nil {
		return err
	}
	if o.ActivationAttempts > 0 {
		// An earlier attempt ended without a record: read the contract first.
		k, err := w.readContract(ctx, sh, o.ContractUUID)
		if err != nil {
			return err
		}
		if k.Status == inbank.ContractActivated {
			return w.recordActivated(ctx, o.Key(), events.ActivatedViaAPI, true)
		}
		if o.ActivationUncertain != nil {
			if settle := o.ActivationUncertain.Add(w.cfg.ActivationSettle); now.Before(settle) {
				return wait(settle.Sub(now), "an earlier activation may still take effect")
			}
		}
	}
	o.ActivationClaim = w.claim(attempt, now)
	o.ActivationAttempts++
	// Until Inbank answers, this attempt may or may not reach it.
	o.ActivationUncertain = &now
	o.note(now, fmt.Sprintf("activating (attempt %d)", o.ActivationAttempts))
	if _, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev); err != nil {
		return err
	}
	err := sh.api.ActivateContract(ctx, o.ProductCode, o.ContractUUID)
	if herr := w.cfg.Hooks.AfterInbankCall(StepActivate, o.OrderID); herr != nil {
		return fmt.Errorf("%w: %v", ErrAbandoned, herr)
	}
	var api *inbank.APIError
	switch {
	case err == nil:
		w.cfg.Metrics.activationCalled()
	case certainlyNotApplied(err):
		// Inbank did not act (it answered 429/502–504, or the call was never
		// sent): the attempt is certain, retry soon.
		w.releaseClaim(ctx, o.Key(), StepActivate, func(o *Order) error {
			o.ActivationClaim, o.ActivationUncertain = nil, nil
			return nil
		})
		return &StepError{Step: StepActivate, Err: err}
	case inbank.IsTransient(err):
		// No answer: it may have been applied. Keep the mark; the claim
		// is released and the contract is read before any new call.
		w.releaseClaim(ctx, o.Key(), StepActivate, func(o *Order) error {
			o.ActivationClaim = nil
			return nil
		})
		return &StepError{Step: StepActivate, Err: err}
	case errors.As(err, &api) && api.ErrorCode == "CONTRACT_ALREADY_ACTIVATED":
		// An earlier attempt did it; fall through to record and await.
	default:
		return w.fail(ctx, o.Key(), StepActivate, err, o.ActivationAttempts)
	}
	_, err = w.update(ctx, o.Key(), func(o *Order) error {
		o.ActivationCalled, o.ActivationClaim, o.ActivationUncertain = true, nil, nil
		o.note(w.now(), "activation called")
		return nil
	})
	if err != nil {
		return err
	}
	o, rev, err = w.reload(ctx, o.Key())
	if err != nil {
		return err
	}
	_, err = w.awaitActivation(ctx, o, rev, events.ActivatedViaAPI, w.cfg.ActivationPoll)
	return err
}

func (w *Workflow) reload(ctx context.Context, orderID string) (*Order, uint64, error) {
	o, rev, err := w.cfg.Store.Load(ctx, orderID)
	return &o, rev, err
}

func (w *Workflow) readContract(ctx context.Context, sh *shop, contractUUID string) (inbank.Contract, error) {
	var k inbank.Contract
	err := shortRetry(ctx, func(ctx context.Context) error {
		var err error
		k, err = sh.api.Contract(ctx, contractUUID)
		return err
	})
	if err != nil {
		return k, &StepError{Step: StepContract, Err: err}
	}
	return k, nil
}

// awaitActivation reads the contract, polling with backoff for up to poll,
// and records the activation once Inbank shows it. Past poll, the order
// waits for the next reconciliation.
func (w *Workflow) awaitActivation(ctx context.Context, o *Order, rev uint64, via string, poll time.Duration) (bool, error) {
	sh, err := w.shopOf(o.Shop)
	if err != nil {
		return false, unprocessable(err)
	}
	var k inbank.Contract
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
			if k.Status != inbank.ContractActivated {
				return retry.RetryableError(errors.New("not activated yet"))
			}
			return nil
		})
		if pctx.Err() != nil && ctx.Err() == nil {
			err = nil // past the poll: reconciliation keeps checking
		}
	}
	if k.Status == inbank.ContractActivated {
		return true, w.recordActivated(ctx, o.Key(), via, via == events.ActivatedViaAPI)
	}
	if err != nil && ctx.Err() == nil {
		var se *StepError
		if errors.As(err, &se) && !inbank.IsTransient(se.Err) {
			return false, w.fail(ctx, o.Key(), StepContract, se.Err, 1)
		}
		return false, err
	}
	return false, nil
}

// recordActivated ends the order with exactly one contract.activated.
func (w *Workflow) recordActivated(ctx context.Context, orderID, via string, called bool) error {
	_, err := w.update(ctx, orderID, func(o *Order) error {
		if o.State == StateActivated {
			return errSkip
		}
		now := w.now()
		o.State, o.ActivatedVia, o.ActivatedAt = StateActivated, via, &now
		o.ActivationCalled = o.ActivationCalled || called
		o.ActivationClaim, o.ActivationUncertain = nil, nil
		data := events.ContractActivated{
			OrderID: o.OrderID, Shop: o.Shop, ContractUUID: o.ContractUUID, SessionUUID: o.SessionUUID,
			ActivatedVia: via, ProductCode: o.ProductCode, Period: o.Period, ActivatedAt: &now,
		}
		if o.Quote != nil {
			g := o.Quote.GrossMonthlyPayment
			data.GrossMonthlyPayment = &g
		}
		w.enqueue(o, events.TypeContractActivated, o.ContractUUID, data)
		o.note(now, "contract activated via "+via)
		w.cfg.Metrics.state(StateActivated)
		if o.SessionAt != nil {
			w.cfg.Metrics.activated(now.Sub(*o.SessionAt).Seconds())
		}
		w.log.InfoContext(ctx, "contract activated", "order_id", o.OrderID, "via", via)
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}
