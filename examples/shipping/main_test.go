package main

import (
	"context"
	"strings"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/apptest"
	"github.com/smartrent-bridge/bridge/internal/events"
)

func TestShippingDrivesActivation(t *testing.T) {
	w := apptest.Start(t)
	placeOrder(t, w, "EX-S")
	session := w.Wait(t, "EX-S", events.TypeSessionCreated, 1)[0]["sessionUuid"].(string)
	if _, err := w.Fake.Sign(session); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "EX-S", events.TypeSessionStatusChange, 1)
	var out strings.Builder
	if err := run(context.Background(), []string{"--nats-url", w.NATSURL, "--order", "EX-S", "--event", "shipped", "--imei", "356938035643809"}, &out); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "EX-S", events.TypeIdentifiersAssigned, 1)
	if err := run(context.Background(), []string{"--nats-url", w.NATSURL, "--order", "EX-S", "--event", "delivered"}, &out); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "EX-S", events.TypeContractActivated, 1)
	if !strings.Contains(out.String(), "EX-S shipped stored as SMARTRENT_IN") {
		t.Fatalf("output %q", out.String())
	}
}

func TestShippingNeedsAnIdentifier(t *testing.T) {
	if err := run(context.Background(), []string{"--order", "x", "--event", "shipped"}, &strings.Builder{}); err == nil {
		t.Fatal("a shipment without identifiers was accepted")
	}
}

func placeOrder(t *testing.T, w *apptest.World, id string) {
	t.Helper()
	body := `{"specversion":"1.0","id":"` + id + `-placed","source":"urn:test","type":"smartrent.order.placed.v1","subject":"` + id + `","datacontenttype":"application/json","data":{"orderId":"` + id + `","period":24,"locale":"et-EE","description":"d","returnUrl":"https://s.example/r","cancelUrl":"https://s.example/c","heroDevice":{"identifierType":"EAN","identifier":"0195949821899","modelId":"apple-iphone-16-128gb","modelName":"iPhone","netPrice":500}}}`
	if _, err := w.JS.Publish(context.Background(), events.SubjectOrderPlaced, []byte(body)); err != nil {
		t.Fatal(err)
	}
}
