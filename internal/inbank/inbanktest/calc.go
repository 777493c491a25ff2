package inbanktest

import (
	"fmt"
	"net/http"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// The fake's pricing. Inbank does not publish its formula; this one follows
// the documented fields and is stable, so tests can assert on figures.
//
//	gross(asset)             = grossPrice if given, else round2(netPrice × (1 + VAT))
//	totalNetPrice            = Σ netPrice;  totalGrossPrice = Σ gross
//	totalGrossPriceWithDiscount = totalGrossPrice − grossTradeInAmount − grossCampaignDiscount
//	totalNetPriceWithDiscount   = round2(totalGrossPriceWithDiscount ÷ (1 + VAT))
//	residualValue(hero)      = round2(netPrice × residual(period)), residual 12→0.45, 24→0.30, 36→0.15; add-ons 0
//	financed                 = max(0, totalNetPriceWithDiscount − Σ residualValue)
//	insurance                = round2(hero netPrice × 0.008) a month when insuranceUsed
//	netMonthlyPayment        = round2(financed ÷ period + financed × AnnualRate ÷ 12 + insurance)
//	vat                      = round2(netMonthlyPayment × VAT); grossMonthlyPayment = netMonthlyPayment + vat
//	netMonthlyPaymentDiscount = round2((grossTradeInAmount + grossCampaignDiscount) ÷ (1 + VAT) ÷ period)
const (
	AnnualRate        = 0.09
	MonthlyInsurance  = 0.008
	DefaultVATRate    = 0.24
	declineFromAmount = 1001
	declineToAmount   = 1100
)

var residualRate = map[int]float64{12: 0.45, 24: 0.30, 36: 0.15}

// apiErr is an error answer of the fake.
type apiErr struct {
	status    int
	message   string
	errorCode string
}

func (e *apiErr) Error() string { return fmt.Sprintf("%d %s %s", e.status, e.errorCode, e.message) }

func rejected(code, msg string) *apiErr {
	return &apiErr{status: http.StatusUnprocessableEntity, message: msg, errorCode: code}
}

func badRequest(msg string) *apiErr {
	return &apiErr{status: http.StatusBadRequest, message: msg, errorCode: "CONSTRAINTS_VIOLATED_GENERAL"}
}

// Error codes the fake answers with (05 names the first two).
const (
	CodeConstraints   = "CONSTRAINTS_VIOLATED_GENERAL"
	CodeModelNotFound = "ASSET_MODEL_NOT_FOUND"
)

// calculate prices req for model m, checking the model's conditions the
// way Inbank enforces them.
func calculate(m Model, req inbankapi.CalculationRequest, vat float64) (inbankapi.Calculation, *apiErr) {
	if err := req.Validate(); err != nil {
		return inbankapi.Calculation{}, badRequest(err.Error())
	}
	if !m.Conditions().OffersPeriod(req.Period) {
		return inbankapi.Calculation{}, rejected(CodeConstraints, fmt.Sprintf("period %d is not available for the model", req.Period))
	}
	switch {
	case m.InsuranceRequirement == inbankapi.InsuranceNever && req.InsuranceUsed:
		return inbankapi.Calculation{}, rejected(CodeConstraints, "insurance is not available for the model")
	case m.InsuranceRequirement == inbankapi.InsuranceAlways && !req.InsuranceUsed:
		return inbankapi.Calculation{}, rejected(CodeConstraints, "insurance is required for the model")
	}
	tradeIn, discount := deref(req.GrossTradeInAmount), deref(req.GrossCampaignDiscount)
	if tradeIn > 0 && !m.TradeInAvailable {
		return inbankapi.Calculation{}, rejected(CodeConstraints, "trade-in is not available for the model")
	}
	if discount > 0 && !m.CampaignDiscountAvailable {
		return inbankapi.Calculation{}, rejected(CodeConstraints, "campaign discount is not available for the model")
	}
	out := inbankapi.Calculation{
		Period: req.Period, InsuranceRequirement: m.InsuranceRequirement, InsuranceUsed: req.InsuranceUsed,
		GrossTradeInAmount: tradeIn, GrossCampaignDiscount: discount,
	}
	var residual, heroNet float64
	for i, a := range req.Assets {
		gross := round2(a.NetPrice * (1 + vat))
		if a.GrossPrice != nil {
			gross = *a.GrossPrice
		}
		res := inbankapi.CalculationAssetResult{
			NetPrice: a.NetPrice, GrossPrice: gross, Type: a.Type, CategoryType: a.Type, Status: "ACTIVE",
		}
		if i == 0 {
			if a.ModelID != m.ID {
				return inbankapi.Calculation{}, rejected(CodeModelNotFound, "asset model not found")
			}
			heroNet = a.NetPrice
			res.ModelID, res.ModelName, res.Name = m.ID, m.Name, m.Name
			res.CategoryCode, res.CategoryName = "phone", "Hero device"
			res.ResidualValue = round2(a.NetPrice * residualRate[req.Period])
			residual += res.ResidualValue
		} else {
			cat, ok := m.Conditions().AddOn(a.CategoryCode)
			if !ok {
				return inbankapi.Calculation{}, rejected(CodeConstraints, fmt.Sprintf("add-on category %q is not allowed for the model", a.CategoryCode))
			}
			if a.NetPrice < cat.MinNetPrice || a.NetPrice > cat.MaxNetPrice {
				return inbankapi.Calculation{}, rejected(CodeConstraints, fmt.Sprintf("add-on %q price is outside %.2f–%.2f", a.CategoryCode, cat.MinNetPrice, cat.MaxNetPrice))
			}
			res.ModelName, res.Name = a.ModelName, a.ModelName
			res.CategoryCode, res.CategoryName = cat.Code, cat.Name
		}
		out.TotalNetPrice = round2(out.TotalNetPrice + a.NetPrice)
		out.TotalGrossPrice = round2(out.TotalGrossPrice + gross)
		out.Assets = append(out.Assets, res)
	}
	l := m.Limits
	if out.TotalNetPrice < l.MinNetPrice || out.TotalNetPrice > l.MaxNetPrice ||
		out.TotalGrossPrice < l.MinGrossPrice || out.TotalGrossPrice > l.MaxGrossPrice {
		return inbankapi.Calculation{}, rejected(CodeConstraints, fmt.Sprintf("total net price %.2f is outside the limits %.2f–%.2f", out.TotalNetPrice, l.MinNetPrice, l.MaxNetPrice))
	}
	out.TotalGrossPriceWithDiscount = round2(out.TotalGrossPrice - tradeIn - discount)
	if out.TotalGrossPriceWithDiscount < 0 {
		return inbankapi.Calculation{}, rejected(CodeConstraints, "discounts exceed the total price")
	}
	out.TotalNetPriceWithDiscount = round2(out.TotalGrossPriceWithDiscount / (1 + vat))
	financed := max(0, out.TotalNetPriceWithDiscount-residual)
	insurance := 0.0
	if req.InsuranceUsed {
		insurance = round2(heroNet * MonthlyInsurance)
	}
	p := float64(req.Period)
	out.NetMonthlyPayment = round2(financed/p + financed*AnnualRate/12 + insurance)
	out.VAT = round2(out.NetMonthlyPayment * vat)
	out.GrossMonthlyPayment = round2(out.NetMonthlyPayment + out.VAT)
	out.NetMonthlyPaymentDiscount = round2((tradeIn + discount) / (1 + vat) / p)
	return out, nil
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// declinedByAmount follows Inbank's demo rule: totals of 1001–1100 are declined.
func declinedByAmount(totalNet float64) bool {
	return totalNet >= declineFromAmount && totalNet <= declineToAmount
}
