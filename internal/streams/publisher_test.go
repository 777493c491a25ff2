package streams_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// TestTrustingDataSkipsOnlyTheSchema: by default an event whose data breaks
// its schema is refused before it reaches the server; VALIDATE_OUTGOING=false
// (TrustingData) publishes it, and still refuses an event without its
// required attributes.
func TestTrustingDataSkipsOnlyTheSchema(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	codec := events.NewCodec(schemas.MustLoad())
	bad, err := codec.New("urn:test", events.TypeSessionCreated, "ORD-1", json.RawMessage(`{"orderId":"ORD-1"}`)) // no sessionUuid, no quote
	if err != nil {
		t.Fatal(err)
	}
	checking := streams.NewPublisher(js, codec)
	if _, err := checking.Publish(ctx, bad); err == nil {
		t.Fatal("the default publisher published data that breaks its schema")
	}
	trusting := checking.TrustingData()
	if _, err := trusting.Publish(ctx, bad); err != nil {
		t.Fatalf("trusting publisher: %v", err)
	}
	noSubject := bad.Clone()
	noSubject.SetSubject("")
	noSubject.SetID("other")
	if _, err := trusting.Publish(ctx, noSubject); err == nil {
		t.Fatal("the trusting publisher published an event without its order id")
	}
}
