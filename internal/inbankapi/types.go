package inbankapi

import "encoding/json"

// Identifier types that name a model in the rental-conditions request (02).
const (
	ModelIdentifierEAN                     = "EAN"
	ModelIdentifierManufacturerProductCode = "MANUFACTURER_PRODUCT_CODE"
)

// Asset identifier types that a contract's hero device can be given (05).
const (
	AssetIdentifierIMEI         = "IMEI"
	AssetIdentifierSerialNumber = "SERIAL_NUMBER"
)

// Asset categorisation types (03, 04).
const (
	AssetModelBased    = "MODEL_BASED"
	AssetCategoryBased = "CATEGORY_BASED"
)

// Insurance requirements of a rental model (02).
const (
	InsuranceNever    = "INSURANCE_NEVER_APPLIED"
	InsuranceOptional = "INSURANCE_OPTIONAL"
	InsuranceAlways   = "INSURANCE_ALWAYS_APPLIED"
)

// Session statuses (05). Declined, cancelled and expired are final.
const (
	SessionPending   = "pending"
	SessionGranted   = "granted"
	SessionCompleted = "completed"
	SessionDeclined  = "declined"
	SessionCancelled = "cancelled"
	SessionExpired   = "expired"
)

// ContractActivated is the contract status that means the rental is in force.
const ContractActivated = "activated"

// SessionFinal reports whether a session status can no longer change.
func SessionFinal(status string) bool {
	switch status {
	case SessionDeclined, SessionCancelled, SessionExpired:
		return true
	}
	return false
}

// Periods are the rental periods in months that Inbank offers at all (03).
var Periods = []int{12, 24, 36}

// RentalConditions is the 200 body of GET detailed-asset-model (02).
type RentalConditions struct {
	ID                        string          `json:"id"`
	Name                      string          `json:"name"`
	Periods                   []int           `json:"periods"`
	AssetIdentifierTypes      []string        `json:"assetIdentifierTypes"`
	Identifiers               json.RawMessage `json:"identifiers,omitempty"`
	SubscriptionTotalLimits   Limits          `json:"subscriptionTotalLimits"`
	InsuranceRequirement      string          `json:"insuranceRequirement"`
	TradeInAvailable          bool            `json:"tradeInAvailable"`
	CampaignDiscountAvailable bool            `json:"campaignDiscountAvailable"`
	AddOnCategories           []AddOnCategory `json:"addOnCategories"`
}

// Limits bounds the total price of a subscription (02).
type Limits struct {
	MinNetPrice   float64 `json:"minNetPrice"`
	MaxNetPrice   float64 `json:"maxNetPrice"`
	MinGrossPrice float64 `json:"minGrossPrice"`
	MaxGrossPrice float64 `json:"maxGrossPrice"`
}

// AddOnCategory is an add-on category allowed with a model (02).
type AddOnCategory struct {
	AssetType               string  `json:"assetType"`
	Code                    string  `json:"code"`
	Name                    string  `json:"name"`
	Type                    string  `json:"type"`
	MinPrice                float64 `json:"minPrice"`
	MaxPrice                float64 `json:"maxPrice"`
	MinNetPrice             float64 `json:"minNetPrice"`
	MaxNetPrice             float64 `json:"maxNetPrice"`
	MinGrossPrice           float64 `json:"minGrossPrice"`
	MaxGrossPrice           float64 `json:"maxGrossPrice"`
	AssetIdentifierRequired bool    `json:"assetIdentifierRequired"`
}

// OffersPeriod reports whether the model can be rented for months.
func (c RentalConditions) OffersPeriod(months int) bool {
	for _, p := range c.Periods {
		if p == months {
			return true
		}
	}
	return false
}

// AcceptsIdentifierType reports whether t is one of the model's asset identifier types.
func (c RentalConditions) AcceptsIdentifierType(t string) bool {
	for _, a := range c.AssetIdentifierTypes {
		if a == t {
			return true
		}
	}
	return false
}

// AddOn returns the add-on category with the given code.
func (c RentalConditions) AddOn(code string) (AddOnCategory, bool) {
	for _, a := range c.AddOnCategories {
		if a.Code == code {
			return a, true
		}
	}
	return AddOnCategory{}, false
}

// CalculationRequest is the body of POST calculations (03).
type CalculationRequest struct {
	Period                int                `json:"period"`
	InsuranceUsed         bool               `json:"insuranceUsed"`
	Assets                []CalculationAsset `json:"assets"`
	GrossTradeInAmount    *float64           `json:"grossTradeInAmount,omitempty"`
	GrossCampaignDiscount *float64           `json:"grossCampaignDiscount,omitempty"`
}

// CalculationAsset is one asset of a calculation request (03).
type CalculationAsset struct {
	Type         string   `json:"type"`
	ModelID      string   `json:"modelId,omitempty"`
	CategoryCode string   `json:"categoryCode,omitempty"`
	NetPrice     float64  `json:"netPrice"`
	GrossPrice   *float64 `json:"grossPrice,omitempty"`
	ModelName    string   `json:"modelName,omitempty"`
}

// Calculation is the 200 body of POST calculations (03).
type Calculation struct {
	GrossMonthlyPayment         float64                  `json:"grossMonthlyPayment"`
	VAT                         float64                  `json:"vat"`
	NetMonthlyPayment           float64                  `json:"netMonthlyPayment"`
	GrossTradeInAmount          float64                  `json:"grossTradeInAmount"`
	GrossCampaignDiscount       float64                  `json:"grossCampaignDiscount"`
	NetMonthlyPaymentDiscount   float64                  `json:"netMonthlyPaymentDiscount"`
	TotalNetPriceWithDiscount   float64                  `json:"totalNetPriceWithDiscount"`
	TotalGrossPriceWithDiscount float64                  `json:"totalGrossPriceWithDiscount"`
	Period                      int                      `json:"period"`
	TotalNetPrice               float64                  `json:"totalNetPrice"`
	TotalGrossPrice             float64                  `json:"totalGrossPrice"`
	Assets                      []CalculationAssetResult `json:"assets"`
	InsuranceRequirement        string                   `json:"insuranceRequirement"`
	InsuranceUsed               bool                     `json:"insuranceUsed"`
}

// CalculationAssetResult is one asset of a calculation response (03).
type CalculationAssetResult struct {
	ModelName      string  `json:"modelName"`
	Name           string  `json:"name"`
	Status         string  `json:"status"`
	CategoryType   string  `json:"categoryType"`
	CategoryCode   string  `json:"categoryCode"`
	CategoryName   string  `json:"categoryName"`
	NetPrice       float64 `json:"netPrice"`
	GrossPrice     float64 `json:"grossPrice"`
	Identifier     string  `json:"identifier"`
	IdentifierType string  `json:"identifierType"`
	ResidualValue  float64 `json:"residualValue"`
	ModelID        string  `json:"modelId"`
	Type           string  `json:"type"`
}

// SessionRequest is the body of POST pos-sessions (04).
//
// CustomerData, CustomerContactData and Merchant are optional, but when
// present their starred keys are required; [SessionRequest.Validate] checks
// that before anything is sent.
type SessionRequest struct {
	ProductCode           string                `json:"productCode"`
	Currency              string                `json:"currency"`
	Locale                string                `json:"locale"`
	ValidUntil            string                `json:"validUntil,omitempty"`
	UserIP                string                `json:"userIp,omitempty"`
	CustomerData          *CustomerData         `json:"customerData,omitempty"`
	CustomerContactData   *CustomerContactData  `json:"customerContactData,omitempty"`
	Purchase              Purchase              `json:"purchase"`
	RentalApplicationData RentalApplicationData `json:"rentalApplicationData"`
	PartnerURLs           *PartnerURLs          `json:"partnerUrls,omitempty"`
	IntegrationInfo       map[string]string     `json:"integrationInfo,omitempty"`
	AdditionalData        map[string]any        `json:"additionalData,omitempty"`
}

// CustomerData pre-fills the customer's identity (04). All but Gender are
// required when the object is sent.
type CustomerData struct {
	IdentityCode string `json:"identityCode"`
	FirstName    string `json:"firstName"`
	LastName     string `json:"lastName"`
	Gender       string `json:"gender,omitempty"`
}

// String hides personal data from logs and error messages.
func (CustomerData) String() string { return "CustomerData{redacted}" }

// CustomerContactData pre-fills the customer's contacts (04). Both fields
// are required when the object is sent.
type CustomerContactData struct {
	Email  string `json:"email"`
	Mobile string `json:"mobile"`
}

// String hides personal data from logs and error messages.
func (CustomerContactData) String() string { return "CustomerContactData{redacted}" }

// Purchase describes the shop's order (04).
type Purchase struct {
	PurchaseReference string         `json:"purchaseReference,omitempty"`
	Description       string         `json:"description"`
	AdditionalDetails map[string]any `json:"additionalDetails,omitempty"`
	Merchant          []Merchant     `json:"merchant,omitempty"`
}

// Merchant names the merchant supplying a purchase (04).
type Merchant struct {
	MerchantOrderReference string `json:"merchantOrderReference,omitempty"`
	MerchantDomainName     string `json:"merchantDomainName,omitempty"`
}

// RentalApplicationData lists what is rented (04). The hero device is first.
type RentalApplicationData struct {
	InsuranceUsed         *bool          `json:"insuranceUsed,omitempty"`
	GrossCampaignDiscount *float64       `json:"grossCampaignDiscount,omitempty"`
	GrossTradeInAmount    *float64       `json:"grossTradeInAmount,omitempty"`
	Assets                []SessionAsset `json:"assets"`
	Period                int            `json:"period"`
}

// SessionAsset is one asset of a session request (04). The document types
// categoryCode as a number but lists string codes (add_on, …); the client
// sends the string.
type SessionAsset struct {
	ModelID      string  `json:"modelId,omitempty"`
	ModelName    string  `json:"modelName"`
	CategoryCode string  `json:"categoryCode,omitempty"`
	NetPrice     float64 `json:"netPrice"`
	Type         string  `json:"type,omitempty"`
}

// PartnerURLs are where Inbank sends the customer and its callbacks (04).
type PartnerURLs struct {
	ReturnURL   string `json:"returnUrl"`
	CancelURL   string `json:"cancelUrl"`
	CallbackURL string `json:"callbackUrl,omitempty"`
}

// CreatedSession is the 201 body of POST pos-sessions (04).
type CreatedSession struct {
	UUID        string `json:"uuid"`
	Status      string `json:"status"`
	RedirectURL string `json:"redirectUrl"`
}

// Session is the 200 body of GET pos-sessions/{uuid} (05).
type Session struct {
	UUID                  string `json:"uuid"`
	Status                string `json:"status"`
	CreditApplicationUUID string `json:"creditApplicationUuid,omitempty"`
	CreditContractUUID    string `json:"creditContractUuid,omitempty"`
}

// AssetIdentifier names one physical device (05).
type AssetIdentifier struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifierType"`
}

// AssetIdentifiersRequest is the body of PATCH asset-identifiers (05).
type AssetIdentifiersRequest struct {
	AssetIdentifiers []AssetIdentifier `json:"assetIdentifiers"`
}

// Contract is the 200 body of GET contracts/{uuid} (05). Only status is
// documented; uuid is read when present.
type Contract struct {
	UUID   string `json:"uuid,omitempty"`
	Status string `json:"status"`
}
