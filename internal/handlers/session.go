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
	if o.SessionClaim.HeldBy(attempt, now) {
		return wait(o.SessionClaim.Until.Sub(now), "session creation claimed by %s", o.SessionClaim.Owner)
	}
	p := o.Placed
	if p == nil {
		return events.Permanent(fmt.Errorf("order %s has no order.placed data", o.OrderID))
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
	var calc inbank.Calculation
	err = shortRetry(ctx, func(ctx context.Context) error {
		var err error
		calc, err = sh.api.Calculate(ctx, o.ProductCode, CalculationRequest(p, insurance))
		return err
	})
	if err != nil {
		if inbank.IsTransient(err) {
			return &StepError{Step: StepCalculate, Err: err}
		}
		return w.fail(ctx, o.Key(), StepCalculate, err, 1)
	}

	// Claim, then call: only the claim's winner creates a session.
	o.IdentifierTypes = cond.AssetIdentifierTypes
	o.SessionClaim = &Claim{Owner: attempt, Until: now.Add(w.cfg.ClaimTTL)}
	o.SessionAttempts++
	o.note(now, fmt.Sprintf("creating session (attempt %d)", o.SessionAttempts))
	if _, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev); err != nil {
		return err
	}
	validUntil := now.Add(sh.ttl).Truncate(time.Second)
	req := w.sessionRequest(o, p, insurance, validUntil)
	created, err := sh.api.CreateSession(ctx, req)
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
	w.cfg.Metrics.sessionCreated()
	quote := quoteOf(calc)
	record := func(o *Order) error {
		if o.State != StateNew || o.SessionClaim == nil || o.SessionClaim.Owner != attempt {
			// Our claim expired and another attempt took over: this
			// session stays unpublished and expires at Inbank.
			return errSkip
		}
		o.State, o.SessionStatus, o.SessionClaim = StatePending, inbank.SessionPending, nil
		createdAt := w.now()
		o.SessionUUID, o.RedirectURL, o.ValidUntil, o.Quote, o.SessionAt = created.UUID, created.RedirectURL, &validUntil, &quote, &createdAt
		o.Placed = dropCustomer(o.Placed)
		w.enqueue(o, events.TypeSessionCreated, created.UUID, events.SessionCreated{
			OrderID: o.OrderID, Shop: o.Shop, SessionUUID: created.UUID, RedirectURL: created.RedirectURL,
			ValidUntil: &validUntil, Quote: quote,
		})
		o.note(w.now(), "session created")
		return nil
	}
	// Inbank has the session now: recording it is worth retrying for a
	// while (a cluster electing a leader), since if the claim runs out
	// first, the next attempt creates another session.
	err = retry.Do(ctx, recordBackoff(w.cfg.ClaimTTL), func(ctx context.Context) error {
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
		w.cfg.Metrics.state(StatePending)
		w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", created.UUID)
	}
	return err
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
		return false, events.Permanent(err)
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
