package events

import (
	"encoding/json"
	"log/slog"
	"slices"
	"time"
)

// CloudEvent types of the public contract.
const (
	TypeOrderPlaced         = "smartrent.order.placed.v1"
	TypeDeviceShipped       = "smartrent.device.shipped.v1"
	TypeDeviceDelivered     = "smartrent.device.delivered.v1"
	TypeCallbackReceived    = "smartrent.inbank.callback.received.v1"
	TypeSessionCreated      = "smartrent.session.created.v1"
	TypeSessionStatusChange = "smartrent.session.status_changed.v1"
	TypeIdentifiersAssigned = "smartrent.contract.identifiers_assigned.v1"
	TypeContractActivated   = "smartrent.contract.activated.v1"
	TypeOrderRejected       = "smartrent.order.rejected.v1"
	TypeOrderFailed         = "smartrent.order.failed.v1"
)

// NATS subjects of the public contract.
const (
	SubjectOrderPlaced         = "smartrent.in.order.placed"
	SubjectDeviceShipped       = "smartrent.in.device.shipped"
	SubjectDeviceDelivered     = "smartrent.in.device.delivered"
	SubjectCallbackReceived    = "smartrent.in.inbank.callback"
	SubjectSessionCreated      = "smartrent.out.session.created"
	SubjectSessionStatusChange = "smartrent.out.session.status_changed"
	SubjectIdentifiersAssigned = "smartrent.out.contract.identifiers_assigned"
	SubjectContractActivated   = "smartrent.out.contract.activated"
	SubjectOrderRejected       = "smartrent.out.order.rejected"
	SubjectOrderFailed         = "smartrent.out.order.failed"

	// SubjectDLQPrefix + the original subject is where a dead letter goes.
	SubjectDLQPrefix = "smartrent.dlq."
)

var subjectByType = map[string]string{
	TypeOrderPlaced:         SubjectOrderPlaced,
	TypeDeviceShipped:       SubjectDeviceShipped,
	TypeDeviceDelivered:     SubjectDeviceDelivered,
	TypeCallbackReceived:    SubjectCallbackReceived,
	TypeSessionCreated:      SubjectSessionCreated,
	TypeSessionStatusChange: SubjectSessionStatusChange,
	TypeIdentifiersAssigned: SubjectIdentifiersAssigned,
	TypeContractActivated:   SubjectContractActivated,
	TypeOrderRejected:       SubjectOrderRejected,
	TypeOrderFailed:         SubjectOrderFailed,
}

// Types lists every event type of the contract, sorted.
func Types() []string {
	out := make([]string, 0, len(subjectByType))
	for t := range subjectByType {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// SubjectOf returns the NATS subject events of eventType are published on.
func SubjectOf(eventType string) (string, bool) {
	s, ok := subjectByType[eventType]
	return s, ok
}

// TypeOf returns the Go value that holds the data of eventType, for
// decoding (a pointer to a zero value), or nil for an unknown type.
func TypeOf(eventType string) any {
	switch eventType {
	case TypeOrderPlaced:
		return &OrderPlaced{}
	case TypeDeviceShipped:
		return &DeviceShipped{}
	case TypeDeviceDelivered:
		return &DeviceDelivered{}
	case TypeCallbackReceived:
		return &CallbackReceived{}
	case TypeSessionCreated:
		return &SessionCreated{}
	case TypeSessionStatusChange:
		return &SessionStatusChanged{}
	case TypeIdentifiersAssigned:
		return &IdentifiersAssigned{}
	case TypeContractActivated:
		return &ContractActivated{}
	case TypeOrderRejected:
		return &OrderRejected{}
	case TypeOrderFailed:
		return &OrderFailed{}
	}
	return nil
}

// ShopOf returns the shop alias an event's data names ("" for the default
// shop or a type without one).
func ShopOf(data any) string {
	switch d := data.(type) {
	case *OrderPlaced:
		return d.Shop
	case *DeviceShipped:
		return d.Shop
	case *DeviceDelivered:
		return d.Shop
	case *CallbackReceived:
		return d.Shop
	}
	return ""
}

// OrderPlaced asks for a Smart Rent session for one order.
type OrderPlaced struct {
	OrderID               string         `json:"orderId"`
	Shop                  string         `json:"shop,omitempty"`
	ProductCode           string         `json:"productCode,omitempty"`
	Period                int            `json:"period"`
	InsuranceUsed         *bool          `json:"insuranceUsed,omitempty"`
	Locale                string         `json:"locale"`
	Currency              string         `json:"currency,omitempty"`
	Description           string         `json:"description"`
	ReturnURL             string         `json:"returnUrl"`
	CancelURL             string         `json:"cancelUrl"`
	HeroDevice            HeroDevice     `json:"heroDevice"`
	AddOns                []AddOn        `json:"addOns,omitempty"`
	GrossTradeInAmount    *float64       `json:"grossTradeInAmount,omitempty"`
	GrossCampaignDiscount *float64       `json:"grossCampaignDiscount,omitempty"`
	Customer              *Customer      `json:"customer,omitempty"`
	UserIP                string         `json:"userIp,omitempty"`
	Merchant              []Merchant     `json:"merchant,omitempty"`
	AdditionalData        map[string]any `json:"additionalData,omitempty"`
}

// HeroDevice is the rented device of an order.
type HeroDevice struct {
	IdentifierType string   `json:"identifierType"`
	Identifier     string   `json:"identifier"`
	ModelID        string   `json:"modelId"`
	ModelName      string   `json:"modelName"`
	NetPrice       float64  `json:"netPrice"`
	GrossPrice     *float64 `json:"grossPrice,omitempty"`
}

// AddOn is an accessory or fee rented with the device.
type AddOn struct {
	CategoryCode string   `json:"categoryCode"`
	ModelName    string   `json:"modelName"`
	NetPrice     float64  `json:"netPrice"`
	GrossPrice   *float64 `json:"grossPrice,omitempty"`
}

// Customer pre-fills Inbank's dialog. It is personal data: it prints and
// logs as a placeholder.
type Customer struct {
	IdentityCode string `json:"identityCode,omitempty"`
	FirstName    string `json:"firstName,omitempty"`
	LastName     string `json:"lastName,omitempty"`
	Gender       string `json:"gender,omitempty"`
	Email        string `json:"email,omitempty"`
	Mobile       string `json:"mobile,omitempty"`
}

// String keeps personal data out of logs and errors.
func (Customer) String() string { return "Customer{redacted}" }

// LogValue keeps personal data out of structured logs.
func (Customer) LogValue() slog.Value { return slog.StringValue("redacted") }

// Merchant names a merchant supplying the purchase.
type Merchant struct {
	MerchantOrderReference string `json:"merchantOrderReference,omitempty"`
	MerchantDomainName     string `json:"merchantDomainName,omitempty"`
}

// AssetIdentifier names one physical device.
type AssetIdentifier struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifierType"`
}

// DeviceShipped says the device left the warehouse.
type DeviceShipped struct {
	OrderID          string            `json:"orderId"`
	Shop             string            `json:"shop,omitempty"`
	AssetIdentifiers []AssetIdentifier `json:"assetIdentifiers"`
	Carrier          string            `json:"carrier,omitempty"`
	TrackingNumber   string            `json:"trackingNumber,omitempty"`
	ShippedAt        *time.Time        `json:"shippedAt,omitempty"`
}

// DeviceDelivered says the customer received the device.
type DeviceDelivered struct {
	OrderID          string            `json:"orderId"`
	Shop             string            `json:"shop,omitempty"`
	DeliveredAt      *time.Time        `json:"deliveredAt,omitempty"`
	AssetIdentifiers []AssetIdentifier `json:"assetIdentifiers,omitempty"`
}

// CallbackReceived is an Inbank callback as the ingress stored it.
type CallbackReceived struct {
	OrderID     string          `json:"orderId"`
	Shop        string          `json:"shop,omitempty"`
	SessionUUID string          `json:"sessionUuid,omitempty"`
	Status      string          `json:"status,omitempty"`
	ReceivedAt  time.Time       `json:"receivedAt"`
	Body        json.RawMessage `json:"body"`
}

// SessionCreated tells the order service where to send the customer.
type SessionCreated struct {
	OrderID     string     `json:"orderId"`
	Shop        string     `json:"shop,omitempty"`
	SessionUUID string     `json:"sessionUuid"`
	RedirectURL string     `json:"redirectUrl"`
	ValidUntil  *time.Time `json:"validUntil,omitempty"`
	Quote       Quote      `json:"quote"`
}

// Quote copies the calculation's field names and values.
type Quote struct {
	Period                      int      `json:"period"`
	GrossMonthlyPayment         float64  `json:"grossMonthlyPayment"`
	NetMonthlyPayment           float64  `json:"netMonthlyPayment"`
	TotalGrossPrice             float64  `json:"totalGrossPrice"`
	TotalGrossPriceWithDiscount *float64 `json:"totalGrossPriceWithDiscount,omitempty"`
	VAT                         *float64 `json:"vat,omitempty"`
}

// SessionStatusChanged is a real change of the session's status at Inbank.
type SessionStatusChanged struct {
	OrderID        string `json:"orderId"`
	Shop           string `json:"shop,omitempty"`
	SessionUUID    string `json:"sessionUuid"`
	PreviousStatus string `json:"previousStatus,omitempty"`
	Status         string `json:"status"`
	ContractUUID   string `json:"contractUuid,omitempty"`
}

// IdentifiersAssigned says the contract's hero device has its identifiers.
type IdentifiersAssigned struct {
	OrderID          string            `json:"orderId"`
	Shop             string            `json:"shop,omitempty"`
	ContractUUID     string            `json:"contractUuid"`
	AssetIdentifiers []AssetIdentifier `json:"assetIdentifiers"`
}

// Ways a contract gets activated.
const (
	ActivatedViaAPI    = "api"
	ActivatedViaPortal = "portal"
)

// ContractActivated says the rental agreement is in force.
type ContractActivated struct {
	OrderID             string     `json:"orderId"`
	Shop                string     `json:"shop,omitempty"`
	ContractUUID        string     `json:"contractUuid"`
	SessionUUID         string     `json:"sessionUuid"`
	ActivatedVia        string     `json:"activatedVia"`
	ProductCode         string     `json:"productCode"`
	Period              int        `json:"period"`
	GrossMonthlyPayment *float64   `json:"grossMonthlyPayment,omitempty"`
	ActivatedAt         *time.Time `json:"activatedAt,omitempty"`
}

// Input types named by [OrderRejected.InputType].
const (
	InputOrderPlaced     = "order.placed"
	InputDeviceShipped   = "device.shipped"
	InputDeviceDelivered = "device.delivered"
)

// Rejection reason codes.
const (
	ReasonInvalidOrder          = "INVALID_ORDER"
	ReasonModelNotRentable      = "MODEL_NOT_RENTABLE"
	ReasonPeriodNotOffered      = "PERIOD_NOT_OFFERED"
	ReasonPriceOutOfLimits      = "PRICE_OUT_OF_LIMITS"
	ReasonInsuranceRequired     = "INSURANCE_REQUIRED"
	ReasonInsuranceNotAvailable = "INSURANCE_NOT_AVAILABLE"
	ReasonTradeInNotAvailable   = "TRADE_IN_NOT_AVAILABLE"
	ReasonDiscountNotAvailable  = "DISCOUNT_NOT_AVAILABLE"
	ReasonAddOnNotAllowed       = "ADD_ON_NOT_ALLOWED"
	ReasonInvalidIdentifier     = "INVALID_IDENTIFIER"
	ReasonOrderUnknown          = "ORDER_UNKNOWN"
	ReasonOrderNotActive        = "ORDER_NOT_ACTIVE"
)

// OrderRejected says an input was wrong.
type OrderRejected struct {
	OrderID   string `json:"orderId"`
	Shop      string `json:"shop,omitempty"`
	InputType string `json:"inputType,omitempty"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
}

// OrderFailed says Inbank refused a call or kept failing.
type OrderFailed struct {
	OrderID    string `json:"orderId"`
	Shop       string `json:"shop,omitempty"`
	Step       string `json:"step"`
	Message    string `json:"message"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	ErrorCode  string `json:"errorCode,omitempty"`
	Attempts   int    `json:"attempts,omitempty"`
}
