package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/apptest"
	"github.com/smartrent-bridge/bridge/internal/events"
)

func TestAnalyticsCountsActivations(t *testing.T) {
	w := apptest.Start(t)
	for _, id := range []string{"EX-A1", "EX-A2"} {
		body := `{"specversion":"1.0","id":"` + id + `","source":"urn:test","type":"smartrent.order.placed.v1","subject":"` + id + `","datacontenttype":"application/json","data":{"orderId":"` + id + `","period":24,"locale":"et-EE","description":"d","returnUrl":"https://s.example/r","cancelUrl":"https://s.example/c","heroDevice":{"identifierType":"EAN","identifier":"0195949821899","modelId":"apple-iphone-16-128gb","modelName":"iPhone","netPrice":500}}}`
		if _, err := w.JS.Publish(context.Background(), events.SubjectOrderPlaced, []byte(body)); err != nil {
			t.Fatal(err)
		}
		session := w.Wait(t, id, events.TypeSessionCreated, 1)[0]["sessionUuid"].(string)
		w.Fake.Sign(session)
		w.Wait(t, id, events.TypeSessionStatusChange, 1)
		if err := w.Fake.PortalApprove(session); err != nil {
			t.Fatal(err)
		}
		w.Wait(t, id, events.TypeContractActivated, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, []string{"--nats-url", w.NATSURL, "--max", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "2 rentals, 52.60 EUR a month") {
		t.Fatalf("output:\n%s", out.String())
	}
}
