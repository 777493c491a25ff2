package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// createSession claims the step, then calls the calculation and the
// session creation together (see "Calculation and session together").
func (w *Workflow) createSession(ctx context.Context, o *Order, rev uint64, f Facts, sh *shop, insurance bool) error {
	p := o.Placed
	validUntil := f.Now.Add(sh.ttl).Truncate(time.Second)
	var (
		created inbankapi.CreatedSession
		calc    inbankapi.Calculation
		calcErr error
	)
	o.IdentifierTypes = f.Conditions.AssetIdentifierTypes
	return w.claimed(ctx, o, rev, f, sideEffect{
		step:     StepSession,
		claim:    func(o *Order) **Claim { return &o.SessionClaim },
		attempts: o.SessionAttempts + 1,
		begin: func(o *Order, now time.Time) {
			o.SessionAttempts++
			o.note(now, fmt.Sprintf("creating session (attempt %d)", o.SessionAttempts))
		},
		call: func(ctx context.Context) error {
			calcDone := make(chan struct{})
			go func() {
				defer close(calcDone)
				calcErr = shortRetry(ctx, func(ctx context.Context) error {
					var err error
					calc, err = sh.api.Calculate(ctx, o.ProductCode, CalculationRequest(p, insurance))
					return err
				})
			}()
			var err error
			created, err = sh.api.CreateSession(ctx, w.sessionRequest(o, p, insurance, validUntil))
			<-calcDone
			if err == nil && calcErr != nil && !inbankapi.IsTransient(calcErr) {
				w.log.WarnContext(ctx, "Inbank refused the calculation of a session it created; the order fails and the session expires unpublished",
					"order_id", o.OrderID, "session_uuid", created.UUID)
				return &StepError{Step: StepCalculate, Err: calcErr}
			}
			return err
		},
		record: func(o *Order, mine bool, now time.Time) error {
			if o.State != StateNew || !mine {
				// Our claim expired and another attempt took over: this
				// session stays unpublished and expires at Inbank.
				return errSkip
			}
			recordCreatedSession(o, created, validUntil, now)
			if calcErr != nil {
				o.note(now, "session created; not published until Inbank's calculation answers")
				return nil
			}
			publishSession(o, quoteOf(calc), now)
			return nil
		},
		then: func(ctx context.Context) error {
			if calcErr != nil {
				// Transient: the retried delivery only prices this session.
				return &StepError{Step: StepCalculate, Err: calcErr}
			}
			w.log.InfoContext(ctx, "session created", "order_id", o.OrderID, "session_uuid", created.UUID)
			return nil
		},
	})
}

// priceSession prices a recorded, unpublished session and publishes it.
// The calculation has no side effect: no claim.
func (w *Workflow) priceSession(ctx context.Context, o *Order, sh *shop, insurance bool) error {
	var calc inbankapi.Calculation
	err := shortRetry(ctx, func(ctx context.Context) error {
		var err error
		calc, err = sh.api.Calculate(ctx, o.ProductCode, CalculationRequest(o.Placed, insurance))
		return err
	})
	if err != nil {
		if inbankapi.IsTransient(err) {
			return &StepError{Step: StepCalculate, Err: err}
		}
		return w.fail(ctx, o.Key(), StepCalculate, err, 1)
	}
	sessionUUID := o.SessionUUID
	err = w.record(ctx, o.Key(), func(o *Order) error {
		if o.State != StateNew || o.SessionUUID != sessionUUID {
			return errSkip
		}
		publishSession(o, quoteOf(calc), w.now())
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

// CalculationRequest is the calculation for an order, with insurance as decided.
func CalculationRequest(p *events.OrderPlaced, insurance bool) inbankapi.CalculationRequest {
	req := inbankapi.CalculationRequest{
		Period: p.Period, InsuranceUsed: insurance,
		GrossTradeInAmount: p.GrossTradeInAmount, GrossCampaignDiscount: p.GrossCampaignDiscount,
		Assets: []inbankapi.CalculationAsset{{
			Type: inbankapi.AssetModelBased, ModelID: p.HeroDevice.ModelID, ModelName: p.HeroDevice.ModelName,
			NetPrice: p.HeroDevice.NetPrice, GrossPrice: p.HeroDevice.GrossPrice,
		}},
	}
	for _, a := range p.AddOns {
		req.Assets = append(req.Assets, inbankapi.CalculationAsset{
			Type: inbankapi.AssetCategoryBased, CategoryCode: a.CategoryCode, ModelName: a.ModelName, NetPrice: a.NetPrice, GrossPrice: a.GrossPrice,
		})
	}
	return req
}

func (w *Workflow) sessionRequest(o *Order, p *events.OrderPlaced, insurance bool, validUntil time.Time) inbankapi.SessionRequest {
	currency := p.Currency
	if currency == "" {
		currency = "EUR"
	}
	req := inbankapi.SessionRequest{
		ProductCode: o.ProductCode, Currency: currency, Locale: p.Locale,
		ValidUntil: validUntil.Format(time.RFC3339), UserIP: p.UserIP,
		Purchase: inbankapi.Purchase{PurchaseReference: o.OrderID, Description: p.Description},
		RentalApplicationData: inbankapi.RentalApplicationData{
			InsuranceUsed: &insurance, Period: p.Period,
			GrossTradeInAmount: p.GrossTradeInAmount, GrossCampaignDiscount: p.GrossCampaignDiscount,
			Assets: []inbankapi.SessionAsset{{Type: inbankapi.AssetModelBased, ModelID: p.HeroDevice.ModelID, ModelName: p.HeroDevice.ModelName, NetPrice: p.HeroDevice.NetPrice}},
		},
		PartnerURLs: &inbankapi.PartnerURLs{
			ReturnURL: p.ReturnURL, CancelURL: p.CancelURL,
			CallbackURL: w.cfg.Tokens.URL(w.cfg.CallbackBaseURL, o.Shop, o.OrderID),
		},
		AdditionalData: p.AdditionalData,
	}
	for _, a := range p.AddOns {
		req.RentalApplicationData.Assets = append(req.RentalApplicationData.Assets, inbankapi.SessionAsset{
			Type: inbankapi.AssetCategoryBased, CategoryCode: a.CategoryCode, ModelName: a.ModelName, NetPrice: a.NetPrice,
		})
	}
	for _, m := range p.Merchant {
		req.Purchase.Merchant = append(req.Purchase.Merchant, inbankapi.Merchant(m))
	}
	if c := p.Customer; c != nil {
		if c.IdentityCode != "" {
			req.CustomerData = &inbankapi.CustomerData{IdentityCode: c.IdentityCode, FirstName: c.FirstName, LastName: c.LastName, Gender: c.Gender}
		}
		if c.Email != "" {
			req.CustomerContactData = &inbankapi.CustomerContactData{Email: c.Email, Mobile: c.Mobile}
		}
	}
	return req
}

func quoteOf(c inbankapi.Calculation) events.Quote {
	q := events.Quote{Period: c.Period, GrossMonthlyPayment: c.GrossMonthlyPayment, NetMonthlyPayment: c.NetMonthlyPayment, TotalGrossPrice: c.TotalGrossPrice}
	if c.TotalGrossPriceWithDiscount != 0 {
		v := c.TotalGrossPriceWithDiscount
		q.TotalGrossPriceWithDiscount = &v
	}
	v := c.VAT
	q.VAT = &v
	return q
}

// readSession re-reads the session and records what it brought. It
// reports false when the read showed nothing new.
func (w *Workflow) readSession(ctx context.Context, o *Order, rev uint64, sh *shop, now time.Time) (bool, error) {
	var s inbankapi.Session
	err := shortRetry(ctx, func(ctx context.Context) error {
		var err error
		s, err = sh.api.Session(ctx, o.SessionUUID)
		return err
	})
	if err != nil {
		if inbankapi.IsTransient(err) {
			return false, &StepError{Step: StepReadSession, Err: err}
		}
		return false, w.fail(ctx, o.Key(), StepReadSession, err, 1)
	}
	if _, known := sessionRank[s.Status]; !known {
		w.log.WarnContext(ctx, "unknown session status from Inbank; ignored", "order_id", o.OrderID, "status", s.Status)
	} else if s.Status != o.SessionStatus && !sessionForward(o, s.Status) {
		w.log.InfoContext(ctx, "session status would move backwards; ignored", "order_id", o.OrderID, "stored", o.SessionStatus, "read", s.Status)
	}
	from, prev := o.State, o.SessionStatus
	if tp := traceParentFrom(ctx); tp != "" {
		o.TraceParent = tp // the events the read causes join the trace that asked for it
	}
	if !applySession(o, s, now) {
		return false, nil
	}
	if o.SessionStatus != prev {
		w.log.InfoContext(ctx, "session status changed", "order_id", o.OrderID, "from", prev, "to", o.SessionStatus)
	}
	return true, w.write(ctx, o, rev, from)
}
