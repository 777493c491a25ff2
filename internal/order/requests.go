package order

import (
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// The requests an order makes at Inbank and what their answers give the
// customer, built from the order alone.

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

// SessionRequest is the payment session for an order, with insurance as
// decided, valid until validUntil, and Inbank's callbacks sent to
// callbackURL.
func SessionRequest(o *Order, p *events.OrderPlaced, insurance bool, validUntil time.Time, callbackURL string) inbankapi.SessionRequest {
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
			CallbackURL: callbackURL,
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

// QuoteOf is the quote a calculation gives the customer.
func QuoteOf(c inbankapi.Calculation) events.Quote {
	q := events.Quote{Period: c.Period, GrossMonthlyPayment: c.GrossMonthlyPayment, NetMonthlyPayment: c.NetMonthlyPayment, TotalGrossPrice: c.TotalGrossPrice}
	if c.TotalGrossPriceWithDiscount != 0 {
		v := c.TotalGrossPriceWithDiscount
		q.TotalGrossPriceWithDiscount = &v
	}
	v := c.VAT
	q.VAT = &v
	return q
}
