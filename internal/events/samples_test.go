package events_test

import (
	"encoding/json"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
)

func ptr[T any](v T) *T { return &v }

// samples returns one realistic data value per event type.
func samples() map[string]any {
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ids := []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: "IMEI"}}
	return map[string]any{
		events.TypeOrderPlaced: events.OrderPlaced{
			OrderID: "ORD-1001", Period: 24, Locale: "et-EE", Description: "Apple iPhone 16, 24 months",
			ReturnURL: "https://shop.example/r", CancelURL: "https://shop.example/c",
			HeroDevice: events.HeroDevice{IdentifierType: "EAN", Identifier: "0195949821899", ModelID: "apple-iphone-16-128gb", ModelName: "Apple iPhone 16", NetPrice: 799},
			AddOns:     []events.AddOn{{CategoryCode: "add_on", ModelName: "Case", NetPrice: 39}},
			Customer:   &events.Customer{IdentityCode: "49403136515", FirstName: "Mari", LastName: "Maasikas", Email: "mari@example.ee", Mobile: "+37255555555"},
		},
		events.TypeDeviceShipped:   events.DeviceShipped{OrderID: "ORD-1001", AssetIdentifiers: ids, Carrier: "Omniva", TrackingNumber: "CC1EE", ShippedAt: &at},
		events.TypeDeviceDelivered: events.DeviceDelivered{OrderID: "ORD-1001", DeliveredAt: &at},
		events.TypeCallbackReceived: events.CallbackReceived{OrderID: "ORD-1001", SessionUUID: "5e3a459a-aada-4d81-b6ad-09cb9483c8bf", Status: "granted", ReceivedAt: at,
			Body: json.RawMessage(`{"posSessionUuid":"5e3a459a-aada-4d81-b6ad-09cb9483c8bf","status":"granted"}`)},
		events.TypeSessionCreated: events.SessionCreated{OrderID: "ORD-1001", SessionUUID: "5e3a459a-aada-4d81-b6ad-09cb9483c8bf", RedirectURL: "https://demo-epos.inbank.ee/session/5e3a459a-aada-4d81-b6ad-09cb9483c8bf",
			ValidUntil: &at, Quote: events.Quote{Period: 24, GrossMonthlyPayment: 42.07, NetMonthlyPayment: 33.93, TotalGrossPrice: 990.76}},
		events.TypeSessionStatusChange: events.SessionStatusChanged{OrderID: "ORD-1001", SessionUUID: "5e3a459a-aada-4d81-b6ad-09cb9483c8bf", PreviousStatus: "pending", Status: "granted", ContractUUID: "0f6d8a52-3c1e-4d7b-9a55-6c3e2f1b7a10"},
		events.TypeIdentifiersAssigned: events.IdentifiersAssigned{OrderID: "ORD-1001", ContractUUID: "0f6d8a52-3c1e-4d7b-9a55-6c3e2f1b7a10", AssetIdentifiers: ids},
		events.TypeContractActivated: events.ContractActivated{OrderID: "ORD-1001", ContractUUID: "0f6d8a52-3c1e-4d7b-9a55-6c3e2f1b7a10", SessionUUID: "5e3a459a-aada-4d81-b6ad-09cb9483c8bf",
			ActivatedVia: events.ActivatedViaAPI, ProductCode: "smart_rent", Period: 24, GrossMonthlyPayment: ptr(42.07), ActivatedAt: &at},
		events.TypeOrderRejected: events.OrderRejected{OrderID: "ORD-1001", InputType: events.InputOrderPlaced, Reason: events.ReasonPeriodNotOffered, Message: "period 48 is not offered"},
		events.TypeOrderFailed:   events.OrderFailed{OrderID: "ORD-1001", Step: "create_session", Message: "HTTP 422", HTTPStatus: 422, ErrorCode: "CONSTRAINTS_VIOLATED_GENERAL", Attempts: 1},
	}
}
