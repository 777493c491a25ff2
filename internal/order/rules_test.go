package order

import (
	"encoding/json"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/schemas"
)

func TestValidIMEI(t *testing.T) {
	for s, want := range map[string]bool{
		"356938035643809": true, "490154203237518": true, "356938035643808": false,
		"35693803564380": false, "3569380356438090": false, "35693803564380a": false, "": false,
	} {
		if got := ValidIMEI(s); got != want {
			t.Errorf("ValidIMEI(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestEligibilityOrderOfChecks(t *testing.T) {
	yes, no := true, false
	cond := inbankapi.RentalConditions{
		Periods: []int{24, 36}, InsuranceRequirement: inbankapi.InsuranceNever,
		SubscriptionTotalLimits: inbankapi.Limits{MinNetPrice: 100, MaxNetPrice: 1000},
		AddOnCategories:         []inbankapi.AddOnCategory{{Code: "add_on", MinNetPrice: 1, MaxNetPrice: 50}},
	}
	ten := 10.0
	base := func() *events.OrderPlaced {
		return &events.OrderPlaced{Period: 24, HeroDevice: events.HeroDevice{ModelID: "m", NetPrice: 500}}
	}
	tests := []struct {
		name      string
		edit      func(*events.OrderPlaced)
		reason    string
		insurance bool
	}{
		{"eligible; insurance follows the model", func(*events.OrderPlaced) {}, "", false},
		{"period first", func(o *events.OrderPlaced) { o.Period, o.HeroDevice.NetPrice, o.InsuranceUsed = 12, 1e6, &yes }, events.ReasonPeriodNotOffered, false},
		{"insurance before trade-in", func(o *events.OrderPlaced) { o.InsuranceUsed, o.GrossTradeInAmount = &yes, &ten }, events.ReasonInsuranceNotAvailable, false},
		{"explicit false is fine with never", func(o *events.OrderPlaced) { o.InsuranceUsed = &no }, "", false},
		{"trade-in before discount", func(o *events.OrderPlaced) { o.GrossTradeInAmount, o.GrossCampaignDiscount = &ten, &ten }, events.ReasonTradeInNotAvailable, false},
		{"discount", func(o *events.OrderPlaced) { o.GrossCampaignDiscount = &ten }, events.ReasonDiscountNotAvailable, false},
		{"add-on before price", func(o *events.OrderPlaced) {
			o.AddOns, o.HeroDevice.NetPrice = []events.AddOn{{CategoryCode: "add_on", NetPrice: 60}}, 1e6
		}, events.ReasonAddOnNotAllowed, false},
		{"price with add-ons", func(o *events.OrderPlaced) {
			o.AddOns, o.HeroDevice.NetPrice = []events.AddOn{{CategoryCode: "add_on", NetPrice: 50}}, 960
		}, events.ReasonPriceOutOfLimits, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.edit(o)
			ins, rej := Eligibility(o, cond)
			got := ""
			if rej != nil {
				got = rej.Reason
			}
			if got != tt.reason || (rej == nil && ins != tt.insurance) {
				t.Fatalf("reason %q insurance %v, want %q %v", got, ins, tt.reason, tt.insurance)
			}
		})
	}
}

func TestCheckOrderFieldsCustomerAllOrNone(t *testing.T) {
	o := &events.OrderPlaced{Period: 12, Customer: &events.Customer{FirstName: "Mari"}}
	if r := CheckOrderFields(o); r == nil || r.Reason != events.ReasonInvalidOrder {
		t.Fatalf("rejection = %v", r)
	}
	o.Customer = &events.Customer{IdentityCode: "1", FirstName: "Mari", LastName: "M", Email: "a@b.c", Mobile: "5"}
	if r := CheckOrderFields(o); r != nil {
		t.Fatalf("rejection = %v", r)
	}
}

// FuzzOrderValidation feeds arbitrary order data through the schema and
// the business rules: they answer or reject, and never panic.
func FuzzOrderValidation(f *testing.F) {
	set := schemas.MustLoad()
	cond := inbankapi.RentalConditions{
		Periods: []int{12, 24, 36}, InsuranceRequirement: inbankapi.InsuranceOptional,
		SubscriptionTotalLimits: inbankapi.Limits{MinNetPrice: 100, MaxNetPrice: 2000, MinGrossPrice: 124, MaxGrossPrice: 2480},
		AddOnCategories:         []inbankapi.AddOnCategory{{Code: "add_on", MinNetPrice: 5, MaxNetPrice: 150}},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if set.Validate(events.TypeOrderPlaced, data) != nil {
			return
		}
		var o events.OrderPlaced
		if err := json.Unmarshal(data, &o); err != nil {
			t.Fatalf("schema-valid data does not decode: %v", err)
		}
		if r := CheckOrderFields(&o); r != nil {
			if r.Reason == "" || r.Message == "" {
				t.Fatalf("empty rejection %+v", r)
			}
			return
		}
		if _, r := Eligibility(&o, cond); r != nil && r.Reason == "" {
			t.Fatalf("empty rejection %+v", r)
		}
	})
}
