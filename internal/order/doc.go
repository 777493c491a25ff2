// Package order is the Smart Rent order domain: the [Order] the bridge
// keeps for each rental, the rules an order.placed must meet ([CheckOrderFields],
// [Eligibility], [CheckIdentifiers]), the requests an order makes at Inbank
// ([CalculationRequest], [SessionRequest]), its transitions (each changes
// the order in memory and puts the events it implies in its outbox), and
// [Decide], which chooses an order's next move from its state and the facts
// at hand.
//
// It does no I/O and imports no NATS and no HTTP: package handlers records
// inputs and carries the moves out against Inbank and the store, and the
// quote service and smartrentctl use the rules and the type directly.
package order
