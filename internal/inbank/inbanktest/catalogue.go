package inbanktest

import (
	"math"
	"slices"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// Model is one rentable model in the fake's catalogue.
type Model struct {
	ID                        string // modelId used in calculations and sessions; also the conditions' "id"
	Name                      string
	EAN                       string
	ManufacturerCode          string
	Periods                   []int
	AssetIdentifierTypes      []string
	Limits                    inbankapi.Limits
	InsuranceRequirement      string
	TradeInAvailable          bool
	CampaignDiscountAvailable bool
	AddOnCategories           []inbankapi.AddOnCategory
}

// Conditions is the model as GET detailed-asset-model returns it.
func (m Model) Conditions() inbankapi.RentalConditions {
	return inbankapi.RentalConditions{
		ID:                        m.ID,
		Name:                      m.Name,
		Periods:                   slices.Clone(m.Periods),
		AssetIdentifierTypes:      slices.Clone(m.AssetIdentifierTypes),
		Identifiers:               []byte(`["EAN","MANUFACTURER_PRODUCT_CODE"]`),
		SubscriptionTotalLimits:   m.Limits,
		InsuranceRequirement:      m.InsuranceRequirement,
		TradeInAvailable:          m.TradeInAvailable,
		CampaignDiscountAvailable: m.CampaignDiscountAvailable,
		AddOnCategories:           slices.Clone(m.AddOnCategories),
	}
}

// Demo models of [DefaultCatalogue], by model id.
const (
	ModelPhone  = "apple-iphone-16-128gb"
	ModelTablet = "samsung-galaxy-tab-s10"
	ModelLaptop = "apple-macbook-air-13-m4"
)

// Their EANs.
const (
	EANPhone  = "0195949821899"
	EANTablet = "8806095754612"
	EANLaptop = "0195949257541"
)

func addOn(code, name string, minNet, maxNet, vat float64) inbankapi.AddOnCategory {
	return inbankapi.AddOnCategory{
		AssetType: "ADD_ON", Code: code, Name: name, Type: inbankapi.AssetCategoryBased,
		MinPrice: minNet, MaxPrice: maxNet, MinNetPrice: minNet, MaxNetPrice: maxNet,
		MinGrossPrice: round2(minNet * (1 + vat)), MaxGrossPrice: round2(maxNet * (1 + vat)),
	}
}

// DefaultCatalogue is a small demo catalogue: a phone (IMEI, every period,
// optional insurance, trade-in and discount), a tablet (serial number, 24
// and 36 months, insurance always) and a laptop (serial number, insurance
// never). Prices between 1001 and 1100 are declined at signing, as in
// Inbank's demo environment.
func DefaultCatalogue(vat float64) []Model {
	lim := func(minNet, maxNet float64) inbankapi.Limits {
		return inbankapi.Limits{MinNetPrice: minNet, MaxNetPrice: maxNet, MinGrossPrice: round2(minNet * (1 + vat)), MaxGrossPrice: round2(maxNet * (1 + vat))}
	}
	return []Model{
		{
			ID: ModelPhone, Name: "Apple iPhone 16 128GB", EAN: EANPhone, ManufacturerCode: "MYE73",
			Periods: []int{12, 24, 36}, AssetIdentifierTypes: []string{inbankapi.AssetIdentifierIMEI},
			Limits: lim(100, 2000), InsuranceRequirement: inbankapi.InsuranceOptional,
			TradeInAvailable: true, CampaignDiscountAvailable: true,
			AddOnCategories: []inbankapi.AddOnCategory{
				addOn("add_on", "Accessories", 5, 150, vat),
				addOn("shipping_fee", "Shipping", 0, 30, vat),
			},
		},
		{
			ID: ModelTablet, Name: "Samsung Galaxy Tab S10", EAN: EANTablet, ManufacturerCode: "SM-X820",
			Periods: []int{24, 36}, AssetIdentifierTypes: []string{inbankapi.AssetIdentifierSerialNumber},
			Limits: lim(200, 1500), InsuranceRequirement: inbankapi.InsuranceAlways,
			AddOnCategories: []inbankapi.AddOnCategory{addOn("add_on", "Accessories", 5, 200, vat)},
		},
		{
			ID: ModelLaptop, Name: "Apple MacBook Air 13 M4", EAN: EANLaptop, ManufacturerCode: "MW123",
			Periods: []int{12, 24, 36}, AssetIdentifierTypes: []string{inbankapi.AssetIdentifierSerialNumber, inbankapi.AssetIdentifierIMEI},
			Limits: lim(500, 3000), InsuranceRequirement: inbankapi.InsuranceNever,
			CampaignDiscountAvailable: true,
		},
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
