package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// instantInbank answers every call at once, without HTTP: what a
// benchmark then measures is the bridge's own work per order, the part
// the bare bridge of `make bench` does not do (decoding with schema
// validation, the order's writes and encodes, the workflow's decisions,
// session.created encoded and validated).
type instantInbank struct{ sessions atomic.Int64 }

func (*instantInbank) RentalConditions(_ context.Context, _, _, identifier string) (inbankapi.RentalConditions, error) {
	return inbankapi.RentalConditions{
		ID: identifier, Name: "phone", Periods: []int{12, 24, 36}, AssetIdentifierTypes: []string{"IMEI"},
		SubscriptionTotalLimits: inbankapi.Limits{MinNetPrice: 1, MaxNetPrice: 10000, MinGrossPrice: 1, MaxGrossPrice: 12000},
		InsuranceRequirement:    inbankapi.InsuranceOptional,
	}, nil
}

func (*instantInbank) Calculate(_ context.Context, _ string, req inbankapi.CalculationRequest) (inbankapi.Calculation, error) {
	return inbankapi.Calculation{GrossMonthlyPayment: 42.07, NetMonthlyPayment: 33.66, VAT: 8.41, Period: req.Period, TotalNetPrice: 807.84, TotalGrossPrice: 1009.68}, nil
}

func (s *instantInbank) CreateSession(context.Context, inbankapi.SessionRequest) (inbankapi.CreatedSession, error) {
	n := s.sessions.Add(1)
	uuid := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	return inbankapi.CreatedSession{UUID: uuid, Status: "pending", RedirectURL: "https://inbank.example/s/" + uuid}, nil
}

var errNotInBenchmark = errors.New("not called in this benchmark")

func (*instantInbank) Session(context.Context, string) (inbankapi.Session, error) {
	return inbankapi.Session{}, errNotInBenchmark
}

func (*instantInbank) AssignAssetIdentifiers(context.Context, string, string, inbankapi.AssetIdentifiersRequest) error {
	return errNotInBenchmark
}

func (*instantInbank) ActivateContract(context.Context, string, string) error {
	return errNotInBenchmark
}

func (*instantInbank) Contract(context.Context, string) (inbankapi.Contract, error) {
	return inbankapi.Contract{}, errNotInBenchmark
}

// BenchmarkOrderPlaced measures one new order from its order.placed as
// it arrives (bytes) to session.created published and the order indexed,
// on an in-memory store (which encodes every write and keeps orders
// decoded, as the KV store does)
// and an Inbank that answers at once. allocs/op is deterministic, so a
// change to the bridge's own work shows in it on any machine; ns/op is
// the CPU the bridge spends on an order beyond the Inbank client and
// NATS.
func BenchmarkOrderPlaced(b *testing.B) {
	codec := events.NewCodec(schemaSet)
	store := newMemStore()
	store.decoded = map[string]order.Order{}
	tokens, _ := callbacktoken.New([]string{"handlers-bench-secret-0123"})
	wf, err := handlers.New(handlers.Config{
		Inbank: &instantInbank{}, Store: store, Open: store, Codec: codec, Tokens: tokens,
		Publisher:       &capture{codec: codec, seen: map[string]bool{}, attempts: map[string]int{}},
		CallbackBaseURL: "http://ingress.test", DefaultProductCode: "BENCH",
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer() // the shop's encoding is not the bridge's work
		i++
		id := fmt.Sprintf("B-%09d", i)
		e, err := codec.New("urn:bench", events.TypeOrderPlaced, id, placed(id, 800))
		if err != nil {
			b.Fatal(err)
		}
		body, err := codec.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		env, err := codec.Decode(nil, body)
		if err != nil {
			b.Fatal(err)
		}
		if err := wf.Handle(ctx, env, streams.Delivery{Subject: events.SubjectOrderPlaced, NumDelivered: 1}); err != nil {
			b.Fatal(err)
		}
	}
	if got := len(store.open); got != i {
		b.Fatalf("%d orders indexed after %d placed", got, i)
	}
}
