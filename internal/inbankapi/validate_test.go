package inbankapi

import (
	"errors"
	"testing"
)

func hero(net float64) SessionAsset {
	return SessionAsset{Type: AssetModelBased, ModelID: "m1", ModelName: "Phone", NetPrice: net}
}

func validSession() SessionRequest {
	return SessionRequest{
		ProductCode: "p", Currency: "EUR", Locale: "et-EE",
		Purchase:              Purchase{PurchaseReference: "o1", Description: "d"},
		RentalApplicationData: RentalApplicationData{Period: 12, Assets: []SessionAsset{hero(500)}},
	}
}

func TestSessionRequestValidate(t *testing.T) {
	neg := -1.0
	tests := []struct {
		name  string
		edit  func(*SessionRequest)
		field string // "" = valid
	}{
		{"valid", func(*SessionRequest) {}, ""},
		{"valid with customer and add-on", func(r *SessionRequest) {
			r.CustomerData = &CustomerData{IdentityCode: "39001010000", FirstName: "A", LastName: "B", Gender: "f"}
			r.CustomerContactData = &CustomerContactData{Email: "a@b.c", Mobile: "+3725"}
			r.RentalApplicationData.Assets = append(r.RentalApplicationData.Assets, SessionAsset{CategoryCode: "add_on", ModelName: "Case", NetPrice: 10})
		}, ""},
		{"no product code", func(r *SessionRequest) { r.ProductCode = "" }, "productCode"},
		{"currency USD", func(r *SessionRequest) { r.Currency = "USD" }, "currency"},
		{"currency lower case", func(r *SessionRequest) { r.Currency = "eur" }, "currency"},
		{"no locale", func(r *SessionRequest) { r.Locale = "" }, "locale"},
		{"no description", func(r *SessionRequest) { r.Purchase.Description = " " }, "purchase.description"},
		{"period 48", func(r *SessionRequest) { r.RentalApplicationData.Period = 48 }, "rentalApplicationData.period"},
		{"no assets", func(r *SessionRequest) { r.RentalApplicationData.Assets = nil }, "rentalApplicationData.assets"},
		{"hero not model based", func(r *SessionRequest) { r.RentalApplicationData.Assets[0].Type = "" }, "rentalApplicationData.assets[0].type"},
		{"hero without modelId", func(r *SessionRequest) { r.RentalApplicationData.Assets[0].ModelID = "" }, "rentalApplicationData.assets[0].modelId"},
		{"second hero", func(r *SessionRequest) {
			r.RentalApplicationData.Assets = append(r.RentalApplicationData.Assets, hero(1))
		}, "rentalApplicationData.assets[1].type"},
		{"add-on without category", func(r *SessionRequest) {
			r.RentalApplicationData.Assets = append(r.RentalApplicationData.Assets, SessionAsset{ModelName: "Case", NetPrice: 1})
		}, "rentalApplicationData.assets[1].categoryCode"},
		{"add-on without name", func(r *SessionRequest) {
			r.RentalApplicationData.Assets = append(r.RentalApplicationData.Assets, SessionAsset{CategoryCode: "add_on", NetPrice: 1})
		}, "rentalApplicationData.assets[1].modelName"},
		{"negative price", func(r *SessionRequest) { r.RentalApplicationData.Assets[0].NetPrice = -5 }, "rentalApplicationData.assets[0].netPrice"},
		{"negative trade-in", func(r *SessionRequest) { r.RentalApplicationData.GrossTradeInAmount = &neg }, "rentalApplicationData.grossTradeInAmount"},
		{"customer without identity code", func(r *SessionRequest) {
			r.CustomerData = &CustomerData{FirstName: "A", LastName: "B"}
		}, "customerData.identityCode"},
		{"customer without last name", func(r *SessionRequest) {
			r.CustomerData = &CustomerData{IdentityCode: "1", FirstName: "A"}
		}, "customerData.lastName"},
		{"bad gender", func(r *SessionRequest) {
			r.CustomerData = &CustomerData{IdentityCode: "1", FirstName: "A", LastName: "B", Gender: "x"}
		}, "customerData.gender"},
		{"contact without mobile", func(r *SessionRequest) { r.CustomerContactData = &CustomerContactData{Email: "a@b.c"} }, "customerContactData.mobile"},
		{"partner urls without cancel", func(r *SessionRequest) { r.PartnerURLs = &PartnerURLs{ReturnURL: "https://r"} }, "partnerUrls.cancelUrl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validSession()
			tt.edit(&r)
			assertField(t, r.Validate(), tt.field)
		})
	}
}

func TestCalculationRequestValidate(t *testing.T) {
	ok := func() CalculationRequest {
		return CalculationRequest{Period: 36, Assets: []CalculationAsset{{Type: AssetModelBased, ModelID: "m", NetPrice: 100}}}
	}
	tests := []struct {
		name  string
		edit  func(*CalculationRequest)
		field string
	}{
		{"valid", func(*CalculationRequest) {}, ""},
		{"period 6", func(r *CalculationRequest) { r.Period = 6 }, "period"},
		{"no assets", func(r *CalculationRequest) { r.Assets = nil }, "assets"},
		{"two heroes", func(r *CalculationRequest) { r.Assets = append(r.Assets, r.Assets[0]) }, "assets[1].type"},
		{"hero category based", func(r *CalculationRequest) {
			r.Assets[0] = CalculationAsset{Type: AssetCategoryBased, CategoryCode: "phone", ModelName: "x"}
		}, "assets[0].type"},
		{"unknown type", func(r *CalculationRequest) { r.Assets[0].Type = "OTHER" }, "assets[0].type"},
		{"category asset without code", func(r *CalculationRequest) {
			r.Assets = append(r.Assets, CalculationAsset{Type: AssetCategoryBased, ModelName: "x"})
		}, "assets[1].categoryCode"},
		{"category asset without name", func(r *CalculationRequest) {
			r.Assets = append(r.Assets, CalculationAsset{Type: AssetCategoryBased, CategoryCode: "add_on"})
		}, "assets[1].modelName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(&r)
			assertField(t, r.Validate(), tt.field)
		})
	}
}

func TestAssetIdentifiersValidate(t *testing.T) {
	tests := []struct {
		name  string
		ids   []AssetIdentifier
		field string
	}{
		{"imei", []AssetIdentifier{{Identifier: "356938035643809", IdentifierType: "IMEI"}}, ""},
		{"serial", []AssetIdentifier{{Identifier: "C02XYZ", IdentifierType: "SERIAL_NUMBER"}}, ""},
		{"none", nil, "assetIdentifiers"},
		{"EAN is a model identifier, not an asset identifier", []AssetIdentifier{{Identifier: "1", IdentifierType: "EAN"}}, "assetIdentifiers[0].identifierType"},
		{"empty identifier", []AssetIdentifier{{IdentifierType: "IMEI"}}, "assetIdentifiers[0].identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertField(t, AssetIdentifiersRequest{AssetIdentifiers: tt.ids}.Validate(), tt.field)
		})
	}
}

func assertField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("err = %v, want valid", err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError for %s", err, field)
	}
	if ve.Field != field {
		t.Fatalf("field = %q, want %q (%v)", ve.Field, field, err)
	}
	if !errors.Is(err, ErrInvalidRequest) || IsTransient(err) {
		t.Fatalf("%v: want ErrInvalidRequest and permanent", err)
	}
}
