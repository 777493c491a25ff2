package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
)

// createSession checks the order, prices it and creates the payment
// session, claiming the step first.
func (w *Workflow) createSession(ctx context.Context, o *Order, rev uint64) error {
	now := w.now()
	attempt := w.attemptID()
	if err := heldElsewhere(o.SessionClaim, attempt, now, "session creation"); err != nil {
		return err
	}
	p := o.Placed
	if p == nil {
		return unprocessable(fmt.Errorf("order %s has no order.placed data", o.OrderID))
	}
	sh, err := w.shopOf(o.Shop)
	if err != nil {
		w.rejectOrder(o, reject(events.ReasonInvalidOrder, "%v", err))
		_, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev)
		return err
	}
	if r := CheckOrderFields(p); r != nil {
		w.rejectOrder(o, r)
		_, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev)
		return err
	}
	cond, err := sh.conditions.Get(ctx, o.ProductCode, p.HeroDevice.IdentifierType, p.HeroDevice.Identifier)
	switch {
	case errors.Is(err, inbank.ErrNotFound):
		w.rejectOrder(o, reject(events.ReasonModelNotRentable, "%s %s is not rentable under product %s", p.HeroDevice.IdentifierType, p.HeroDevice.Identifier, o.ProductCode))
		_, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev)
		return err
	case err != nil && inbank.IsTransient(err):
		return &StepError{Step: StepConditions, Err: err}
	case err != nil:
		return w.fail(ctx, o.Key(), StepConditions, err, 1)
	}
	insurance, rej := Eligibility(p, cond)
	if rej != nil {
		w.rejectOrder(o, rej)
		_, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev)
		return err
	}
	if o.SessionUUID != "" {
		// The session was created and recorded, its calculation was not
		// (it failed transiently): price it now and publish.
		return w.priceCreatedSession(ctx, o, sh, insurance)
	}

	// Claim, then call: only the claim's winner creates a session. The
	// calculation runs alongside the session creation (the session request
	// needs nothing from its answer), so the customer waits for one Inbank
	// round trip, not two; see "Calculation and session together" above.
	o.IdentifierTypes = cond.AssetIdentifierTypes
	o.SessionClaim = w.claim(attempt, now)
	o.SessionAttempts++
	o.note(now, fmt.Sprintf("creating session (attempt %d)", o.SessionAttempts))
	if _, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev); err != nil {
		return err
	}
	var calc inbank.Calculation
	var calcErr error
	calcDone := make(chan struct{})
	go func() {
		defer close(calcDone)
		calcErr = shortRetry(ctx, func(ctx context.Context) error {
			var err error
			calc, err = sh.api.Calculate(ctx, o.ProductCode, CalculationRequest(p, insurance))
			return err
		})
	}()
	validUntil := now.Add(sh.ttl).Truncate(time.Second)
	req := w.sessionRequest(o, p, insurance, validUntil)
	created, err := sh.api.CreateSession(ctx, req)
	<-calcDone
	if herr := w.cfg.Hooks.AfterInbankCall(StepSession, o.OrderID); herr != nil {
		return fmt.Errorf("%w: %v", ErrAbandoned, herr)
	}
	if err != nil {
		if inbank.IsTransient(err) {
			// Release the claim so the retry need not wait for it. If the
			// request did reach Inbank, its session is never published.
			w.releaseClaim(ctx, o.Key(), StepSession, func(o *Order) error {
				if o.SessionClaim == nil || o.SessionClaim.Owner != attempt {
					return errSkip
				}
				o.SessionClaim = nil
				return nil
			})
			return &StepError{Step: StepSession, Err: err}
		}
		return w.fail(ctx, o.Key(), StepSession, err, o.SessionAttempts)
	}
	if calcErr != nil {
		return w.sessionWithoutPrice(ctx, o, attempt, created, validUntil, calcErr)
	}
	quote := quoteOf(calc)
	return w.recordSession(ctx, o, created.UUID, func(o *Order) error {
		if o.State != StateNew || o.SessionClaim == nil || o.SessionClaim.Owner != attempt {
			// Our claim expired and another attempt took over: this
			// session stays unpublished and expires at Inbank.
			return errSkip
		}
		createdAt := w.now()
		o.SessionUUID, o.RedirectURL, o.ValidUntil, o.SessionAt = created.UUID, created.RedirectURL, &validUntil, &createdAt
		w.publishSession(o, quote)
		return nil
	})
}

// publishSession moves a created, priced session to pending and queues
// session.created.
func (w *Workflow) publishSession(o *Order, quote events.Quote) {
	o.State, o.SessionStatus, o.SessionClaim, o.Quote = StatePending, inbank.SessionPending, nil, &quote
	o.Placed = dropCustomer(o.Placed)
	w.enqueue(o, events.TypeSessionCreated, o.SessionUUID, events.SessionCreated{
		OrderID: o.OrderID, Shop: o.Shop, SessionUUID: o.SessionUUID, RedirectURL: o.RedirectURL,
		ValidUntil: o.ValidUntil, Quote: quote,
	})
	o.note(w.now(), "session created")
}

// recordSession writes what Inbank's new session changed. Inbank has the
// session now: recording it is worth retrying for a while (a cluster
// electing a leader), since if the claim runs out first, the next attempt
// creates another session.
func (w *Workflow) recordSession(ctx context.Context, o *Order, sessionUUID string, record func(o *Order) error) error {
	err := retry.Do(ctx, recordBackoff(w.cfg.ClaimTTL), func(ctx context.Context) error {
		_, err := w.update(ctx, o.Key(), record)
		if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, events.ErrNotFound) {
			return retry.RetryableError(err)
		}
		return err
	})
	if errors.Is(err, errSkip) {
		w.log.WarnContext(ctx, "session created after our claim was taken over; it will expire unpublished", "order_id", o.OrderID)
		return nil
	}
	if err == nil {
		w.cfg.Metrics.sessionCreated()
		w.cfg.Metrics.state(StatePending)
		w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", sessionUUID)
	}
	return err
}

// sessionWithoutPrice handles a session Inbank created while its
// calculation failed. Refused (4xx): the order fails at the calculation,
// as it did when the calculation came first, and the session is never
// published (it expires at Inbank). Transient: the session is recorded,
// unpublished, and the retried delivery only prices it
// (priceCreatedSession): no second session.
func (w *Workflow) sessionWithoutPrice(ctx context.Context, o *Order, attempt string, created inbank.CreatedSession, validUntil time.Time, calcErr error) error {
	if !inbank.IsTransient(calcErr) {
		w.log.WarnContext(ctx, "Inbank refused the calculation of a session it created; the order fails and the session expires unpublished",
			"order_id", o.OrderID, "session_uuid", created.UUID)
		return w.fail(ctx, o.Key(), StepCalculate, calcErr, 1)
	}
	_, err := w.update(ctx, o.Key(), func(o *Order) error {
		if o.State != StateNew || o.SessionClaim == nil || o.SessionClaim.Owner != attempt {
			return errSkip
		}
		createdAt := w.now()
		o.SessionUUID, o.RedirectURL, o.ValidUntil, o.SessionAt, o.SessionClaim = created.UUID, created.RedirectURL, &validUntil, &createdAt, nil
		o.note(createdAt, "session created; not published until Inbank's calculation answers")
		return nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return err // the claim runs out; the next attempt may create another session, as after any lost record
	}
	return &StepError{Step: StepCalculate, Err: calcErr}
}

// priceCreatedSession prices a recorded, unpublished session and
// publishes it.
func (w *Workflow) priceCreatedSession(ctx context.Context, o *Order, sh *shop, insurance bool) error {
	var calc inbank.Calculation
	err := shortRetry(ctx, func(ctx context.Context) error {
		var err error
		calc, err = sh.api.Calculate(ctx, o.ProductCode, CalculationRequest(o.Placed, insurance))
		return err
	})
	if err != nil {
		if inbank.IsTransient(err) {
			return &StepError{Step: StepCalculate, Err: err}
		}
		return w.fail(ctx, o.Key(), StepCalculate, err, 1)
	}
	quote, sessionUUID := quoteOf(calc), o.SessionUUID
	return w.recordSession(ctx, o, sessionUUID, func(o *Order) error {
		if o.State != StateNew || o.SessionUUID != sessionUUID {
			return errSkip
		}
		w.publishSession(o, quote)
		return nil
	})
}

// recordBackoff retries a record for about half a claim's life.
func recordBackoff(claim time.Duration) retry.Backoff {
	return retry.WithMaxDuration(claim/2, retry.WithCappedDuration(time.Second, retry.WithJitterPercent(20, retry.NewExponential(50*time.Millisecond))))
}

// CalculationRequest is the calculation for an order, with insurance as decided.
func CalculationRequest(p *events.OrderPlaced, insurance bool) inbank.CalculationRequest {
	req := inbank.CalculationRequest{
		Period: p.Period, InsuranceUsed: insurance,
		GrossTradeInAmount: p.GrossTradeInAmount, GrossCampaignDiscount: p.GrossCampaignDiscount,
		Assets: []inbank.CalculationAsset{{
			Type: inbank.AssetModelBased, ModelID: p.HeroDevice.ModelID, ModelName: p.HeroDevice.ModelName,
			NetPrice: p.HeroDevice.NetPrice, GrossPrice: p.HeroDevice.GrossPrice,
		}},
	}
	for _, a := range p.AddOns {
		req.Assets = append(req.Assets, inbank.CalculationAsset{
			Type: inbank.AssetCategoryBased, CategoryCode: a.CategoryCode, ModelName: a.ModelName, NetPrice: a.NetPrice, GrossPrice: a.GrossPrice,
		})
	}
	return req
}

func (w *Workflow) sessionRequest(o *Order, p *events.OrderPlaced, insurance bool, validUntil time.Time) inbank.SessionRequest {
	currency := p.Currency
	if currency == "" {
		currency = "EUR"
	}
	req := inbank.SessionRequest{
		ProductCode: o.ProductCode, Currency: currency, Locale: p.Locale,
		ValidUntil: validUntil.Format(time.RFC3339), UserIP: p.UserIP,
		Purchase: inbank.Purchase{PurchaseReference: o.OrderID, Description: p.Description},
		RentalApplicationData: inbank.RentalApplicationData{
			InsuranceUsed: &insurance, Period: p.Period,
			GrossTradeInAmount: p.GrossTradeInAmount, GrossCampaignDiscount: p.GrossCampaignDiscount,
			Assets: []inbank.SessionAsset{{Type: inbank.AssetModelBased, ModelID: p.HeroDevice.ModelID, ModelName: p.HeroDevice.ModelName, NetPrice: p.HeroDevice.NetPrice}},
		},
		PartnerURLs: &inbank.PartnerURLs{
			ReturnURL: p.ReturnURL, CancelURL: p.CancelURL,
			CallbackURL: w.cfg.Tokens.URL(w.cfg.CallbackBaseURL, o.Shop, o.OrderID),
		},
		AdditionalData: p.AdditionalData,
	}
	for _, a := range p.AddOns {
		req.RentalApplicationData.Assets = append(req.RentalApplicationData.Assets, inbank.SessionAsset{
			Type: inbank.AssetCategoryBased, CategoryCode: a.CategoryCode, ModelName: a.ModelName, NetPrice: a.NetPrice,
		})
	}
	for _, m := range p.Merchant {
		req.Purchase.Merchant = append(req.Purchase.Merchant, inbank.Merchant(m))
	}
	if c := p.Customer; c != nil {
		if c.IdentityCode != "" {
			req.CustomerData = &inbank.CustomerData{IdentityCode: c.IdentityCode, FirstName: c.FirstName, LastName: c.LastName, Gender: c.Gender}
		}
		if c.Email != "" {
			req.CustomerContactData = &inbank.CustomerContactData{Email: c.Email, Mobile: c.Mobile}
		}
	}
	return req
}

func quoteOf(c inbank.Calculation) events.Quote {
	q := events.Quote{Period: c.Period, GrossMonthlyPayment: c.GrossMonthlyPayment, NetMonthlyPayment: c.NetMonthlyPayment, TotalGrossPrice: c.TotalGrossPrice}
	if c.TotalGrossPriceWithDiscount != 0 {
		v := c.TotalGrossPriceWithDiscount
		q.TotalGrossPriceWithDiscount = &v
	}
	v := c.VAT
	q.VAT = &v
	return q
}

// sessionRank orders statuses so that state only moves forward.
var sessionRank = map[string]int{
	inbank.SessionPending: 0, inbank.SessionGranted: 1, inbank.SessionCompleted: 2,
	inbank.SessionDeclined: 3, inbank.SessionCancelled: 3, inbank.SessionExpired: 3,
}

// refreshSession re-reads the session and records a real change.
func (w *Workflow) refreshSession(ctx context.Context, o *Order, rev uint64) (bool, error) {
	sh, err := w.shopOf(o.Shop)
	if err != nil {
		return false, unprocessable(err)
	}
	var s inbank.Session
	err = shortRetry(ctx, func(ctx context.Context) error {
		var err error
		s, err = sh.api.Session(ctx, o.SessionUUID)
		return err
	})
	if err != nil {
		if inbank.IsTransient(err) {
			return false, &StepError{Step: StepReadSession, Err: err}
		}
		return false, w.fail(ctx, o.Key(), StepReadSession, err, 1)
	}
	changed := s.Status != o.SessionStatus && sessionRank[s.Status] >= sessionRank[o.SessionStatus] &&
		!inbank.SessionFinal(o.SessionStatus)
	if _, known := sessionRank[s.Status]; !known {
		w.log.WarnContext(ctx, "unknown session status from Inbank; ignored", "order_id", o.OrderID, "status", s.Status)
		changed = false
	}
	if !changed && s.Status != o.SessionStatus {
		w.log.InfoContext(ctx, "session status would move backwards; ignored", "order_id", o.OrderID, "stored", o.SessionStatus, "read", s.Status)
	}
	if !changed && !o.RefreshRequested && (s.CreditContractUUID == "" || s.CreditContractUUID == o.ContractUUID) {
		// Nothing new at Inbank: go on with what the order waits for.
		if o.State == StateGranted {
			return w.fulfil(ctx, o, rev, true)
		}
		return false, nil
	}
	if o.State == StateActivated && !changed {
		o.RefreshRequested = false
		_, err = w.cfg.Store.Save(ctx, o.Key(), *o, rev)
		return true, err
	}
	o.RefreshRequested = false
	if s.CreditContractUUID != "" {
		o.ContractUUID = s.CreditContractUUID
	}
	if changed {
		prev := o.SessionStatus
		o.SessionStatus = s.Status
		w.enqueue(o, events.TypeSessionStatusChange, s.Status, events.SessionStatusChanged{
			OrderID: o.OrderID, Shop: o.Shop, SessionUUID: o.SessionUUID, PreviousStatus: prev, Status: s.Status, ContractUUID: o.ContractUUID,
		})
		switch {
		case o.State == StateActivated:
			// The order's own state only moves forward; the event above
			// still reports Inbank's change.
		case s.Status == inbank.SessionGranted, s.Status == inbank.SessionCompleted:
			o.State = StateGranted
		case s.Status == inbank.SessionDeclined:
			o.State = StateDeclined
		case s.Status == inbank.SessionCancelled:
			o.State = StateCancelled
		case s.Status == inbank.SessionExpired:
			o.State = StateExpired
		}
		o.note(w.now(), "session "+s.Status)
		w.cfg.Metrics.state(o.State)
		w.log.InfoContext(ctx, "session status changed", "order_id", o.OrderID, "from", prev, "to", s.Status)
	}
	_, err = w.cfg.Store.Save(ctx, o.Key(), *o, rev)
	return true, err
}
