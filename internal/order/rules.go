package order

import (
	"fmt"
	"slices"
	"strings"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// Rejection is a business reason not to go on with an input.
type Rejection struct {
	Reason  string // a reason code of the contract
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

func NewRejection(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// CheckOrderFields applies the rules of order.placed that need no Inbank
// data (beyond the schema). It returns nil or an INVALID_ORDER or
// PERIOD_NOT_OFFERED rejection.
func CheckOrderFields(o *events.OrderPlaced) *Rejection {
	if o.Currency != "" && o.Currency != "EUR" {
		return NewRejection(events.ReasonInvalidOrder, "currency %q is not offered; only EUR", o.Currency)
	}
	if c := o.Customer; c != nil {
		if (c.IdentityCode != "" || c.FirstName != "" || c.LastName != "") && (c.IdentityCode == "" || c.FirstName == "" || c.LastName == "") {
			return NewRejection(events.ReasonInvalidOrder, "customer: identityCode, firstName and lastName come together")
		}
		if (c.Email != "" || c.Mobile != "") && (c.Email == "" || c.Mobile == "") {
			return NewRejection(events.ReasonInvalidOrder, "customer: email and mobile come together")
		}
	}
	if !slices.Contains(inbankapi.Periods, o.Period) {
		return NewRejection(events.ReasonPeriodNotOffered, "period %d is not offered; Inbank offers 12, 24 or 36 months", o.Period)
	}
	return nil
}

// Eligibility checks an order against its model's rental conditions, in the
// contract's order: period, insurance, trade-in, discount, add-ons, price
// limits. It returns whether insurance is used (the model decides when the
// order does not say) or the first rejection.
func Eligibility(o *events.OrderPlaced, c inbankapi.RentalConditions) (insuranceUsed bool, rej *Rejection) {
	if !c.OffersPeriod(o.Period) {
		return false, NewRejection(events.ReasonPeriodNotOffered, "period %d is not offered for %s (%s)", o.Period, o.HeroDevice.ModelID, joinInts(c.Periods))
	}
	insuranceUsed = c.InsuranceRequirement != inbankapi.InsuranceNever
	if o.InsuranceUsed != nil {
		switch {
		case *o.InsuranceUsed && c.InsuranceRequirement == inbankapi.InsuranceNever:
			return false, NewRejection(events.ReasonInsuranceNotAvailable, "insurance is not available for %s", o.HeroDevice.ModelID)
		case !*o.InsuranceUsed && c.InsuranceRequirement == inbankapi.InsuranceAlways:
			return false, NewRejection(events.ReasonInsuranceRequired, "insurance is required for %s", o.HeroDevice.ModelID)
		}
		insuranceUsed = *o.InsuranceUsed
	}
	if positive(o.GrossTradeInAmount) && !c.TradeInAvailable {
		return false, NewRejection(events.ReasonTradeInNotAvailable, "trade-in is not available for %s", o.HeroDevice.ModelID)
	}
	if positive(o.GrossCampaignDiscount) && !c.CampaignDiscountAvailable {
		return false, NewRejection(events.ReasonDiscountNotAvailable, "campaign discount is not available for %s", o.HeroDevice.ModelID)
	}
	for i, a := range o.AddOns {
		cat, ok := c.AddOn(a.CategoryCode)
		if !ok {
			return false, NewRejection(events.ReasonAddOnNotAllowed, "addOns[%d]: category %q is not allowed with %s", i, a.CategoryCode, o.HeroDevice.ModelID)
		}
		if a.NetPrice < cat.MinNetPrice || (cat.MaxNetPrice > 0 && a.NetPrice > cat.MaxNetPrice) {
			return false, NewRejection(events.ReasonAddOnNotAllowed, "addOns[%d]: net price %.2f is outside %.2f–%.2f for %q", i, a.NetPrice, cat.MinNetPrice, cat.MaxNetPrice, a.CategoryCode)
		}
	}
	net, gross, allGross := o.HeroDevice.NetPrice, 0.0, o.HeroDevice.GrossPrice != nil
	if allGross {
		gross = *o.HeroDevice.GrossPrice
	}
	for _, a := range o.AddOns {
		net += a.NetPrice
		if a.GrossPrice == nil {
			allGross = false
		} else {
			gross += *a.GrossPrice
		}
	}
	l := c.SubscriptionTotalLimits
	if net < l.MinNetPrice || (l.MaxNetPrice > 0 && net > l.MaxNetPrice) {
		return false, NewRejection(events.ReasonPriceOutOfLimits, "total net price %.2f is outside %.2f–%.2f", net, l.MinNetPrice, l.MaxNetPrice)
	}
	if allGross && (gross < l.MinGrossPrice || (l.MaxGrossPrice > 0 && gross > l.MaxGrossPrice)) {
		return false, NewRejection(events.ReasonPriceOutOfLimits, "total gross price %.2f is outside %.2f–%.2f", gross, l.MinGrossPrice, l.MaxGrossPrice)
	}
	return insuranceUsed, nil
}

func positive(p *float64) bool { return p != nil && *p > 0 }

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// CheckIdentifiers checks a device's identifiers against the model's
// identifier types: at least one of an accepted type, IMEIs of 15 digits
// with a valid Luhn check digit. It returns nil or INVALID_IDENTIFIER.
func CheckIdentifiers(ids []events.AssetIdentifier, accepted []string) *Rejection {
	if len(ids) == 0 {
		return NewRejection(events.ReasonInvalidIdentifier, "no asset identifiers")
	}
	for i, id := range ids {
		if len(accepted) > 0 && !slices.Contains(accepted, id.IdentifierType) {
			return NewRejection(events.ReasonInvalidIdentifier, "assetIdentifiers[%d]: type %s is not accepted for the model (%s)", i, id.IdentifierType, strings.Join(accepted, ", "))
		}
		if id.IdentifierType == inbankapi.AssetIdentifierIMEI && !ValidIMEI(id.Identifier) {
			return NewRejection(events.ReasonInvalidIdentifier, "assetIdentifiers[%d]: not a valid IMEI (15 digits with a Luhn check digit)", i)
		}
		if strings.TrimSpace(id.Identifier) == "" {
			return NewRejection(events.ReasonInvalidIdentifier, "assetIdentifiers[%d]: empty identifier", i)
		}
	}
	return nil
}

// ValidIMEI reports whether s is 15 digits whose last is the Luhn check
// digit of the first 14.
func ValidIMEI(s string) bool {
	if len(s) != 15 {
		return false
	}
	sum := 0
	for i := range 15 {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
