package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// rawEvent is a structured-mode event our own codec would refuse to
// encode (its data breaks the schema), as a careless producer sends it.
func rawEvent(typ, orderID string, data map[string]any) *nats.Msg {
	data["orderId"] = orderID
	id := events.NewID()
	body, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "urn:shop:hostile", "type": typ, "subject": orderID,
		"time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json", "data": data,
	})
	subj, _ := events.SubjectOf(typ)
	return &nats.Msg{Subject: subj, Data: body, Header: nats.Header{"Nats-Msg-Id": {id}, "Content-Type": {events.ContentTypeStructured}}}
}

// TestHostileOrderIDs: an id of 5,000 characters on every input subject and
// on the admin subject is dead-lettered (it names no order the bridge can
// address) and costs the bridge nothing: its NATS connection stays up and
// a normal order then completes. Ids that are odd but within the limit
// (slashes, dots, wildcards, spaces, unicode, 200 characters) are orders
// like any other, and two shops' keys never meet.
func TestHostileOrderIDs(t *testing.T) {
	lv, lvSrv := inbanktest.NewServer(t, inbanktest.Config{APIKey: "lv-api-key", ShopUUID: "0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001", ProductCode: "smart_rent_lv"})
	shopsFile := filepath.Join(t.TempDir(), "shops.yaml")
	os.WriteFile(shopsFile, []byte(fmt.Sprintf("shops:\n  %s:\n    baseUrl: %s\n    shopUuid: 0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001\n    productCode: smart_rent_lv\n    apiKey: {env: LV_INBANK_KEY}\n", lvShop, lvSrv.URL)), 0o600)
	w := newWorld(t, inbanktest.Config{}, map[string]string{"INBANK_SHOPS_FILE": shopsFile, "LV_INBANK_KEY": "lv-api-key"})
	w.bridge()
	ctx := context.Background()

	long := strings.Repeat("L", 5000)
	for _, m := range []*nats.Msg{
		rawEvent(events.TypeOrderPlaced, long, map[string]any{"period": 24}),
		rawEvent(events.TypeDeviceShipped, long, map[string]any{"assetIdentifiers": []map[string]string{{"identifier": "356938035643809", "identifierType": "IMEI"}}}),
		rawEvent(events.TypeDeviceDelivered, long, map[string]any{}),
		rawEvent(events.TypeCallbackReceived, long, map[string]any{"receivedAt": time.Now().UTC().Format(time.RFC3339), "body": map[string]any{}}),
	} {
		if _, err := w.pub.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{long: "request must be", strings.Repeat("L", 201): "order id has 201 characters"} {
		req, _ := json.Marshal(ctl.ReconcileRequest{OrderID: id})
		reply, err := w.nc.Request(ctl.SubjectReconcile, req, 10*time.Second)
		if err != nil {
			t.Fatalf("admin subject: %v", err)
		}
		var rr ctl.ReconcileReply
		if json.Unmarshal(reply.Data, &rr) != nil || !strings.Contains(rr.Error, want) {
			t.Fatalf("admin reply %s, want %q", reply.Data, want)
		}
	}
	for _, subj := range []string{events.SubjectOrderPlaced, events.SubjectDeviceShipped, events.SubjectDeviceDelivered, events.SubjectCallbackReceived} {
		w.oneDeadLetter(events.SubjectDLQPrefix + subj)
	}

	// Odd ids within the limit, in the default shop, and a collision that
	// the earlier keys allowed: the default shop's "lv-web/X" and
	// lv-web's "X".
	odd := []string{"lv-web/X", ".", "*", ">", "../x", "a b", "ü-ßø-注文", strings.Repeat("注", 200)}
	for _, id := range odd {
		w.place(id, 500)
	}
	lvX := orderPlaced("X", 500)
	lvX.Shop = lvShop
	w.publish(events.TypeOrderPlaced, "X", lvX)
	for _, id := range odd {
		w.sessionOf(id)
	}
	if !w.out.waitUntil(30*time.Second, func() bool { return len(w.out.OfLocked("X", events.TypeSessionCreated)) == 1 }) {
		t.Fatal("lv-web's order X got no session")
	}
	if lv.SessionsCreated("X") != 1 || w.fake.SessionsCreated("lv-web/X") != 1 {
		t.Fatalf("sessions: lv-web X %d, default lv-web/X %d", lv.SessionsCreated("X"), w.fake.SessionsCreated("lv-web/X"))
	}
	// A shipment for lv-web's X reaches lv-web's contract only.
	if _, err := lv.Sign(lv.Sessions("X")[0].UUID); err != nil {
		t.Fatal(err)
	}
	w.publish(events.TypeDeviceShipped, "X", events.DeviceShipped{OrderID: "X", Shop: lvShop, AssetIdentifiers: imei})
	if !w.out.waitUntil(30*time.Second, func() bool { return len(w.out.OfLocked("X", events.TypeIdentifiersAssigned)) == 1 }) {
		t.Fatal("lv-web's X: no identifiers assigned")
	}
	if c := w.fake.Sessions("lv-web/X")[0].ContractUUID; c != "" && w.fake.IdentifierAssignments(c) != 0 {
		t.Fatal("lv-web's shipment reached the default shop's order lv-web/X")
	}

	// The connection is up and a normal order completes.
	resp, err := http.Get("http://" + w.started.Ops.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || w.nc.Status() != nats.CONNECTED {
		t.Fatalf("/readyz %d after hostile input", resp.StatusCode)
	}
	w.place("ORD-AFTER", 500)
	s := w.sessionOf("ORD-AFTER")
	w.fake.Sign(s)
	w.ship("ORD-AFTER", imei)
	w.deliver("ORD-AFTER")
	w.out.wait("ORD-AFTER", events.TypeContractActivated, 1)
}

// TestForgedMaxDeliveriesAdvisoryIgnored: on a server without the
// least-privilege users anyone may publish the advisory that makes the
// bridge fail an order; the bridge believes only one that matches its
// consumer, its MAX_DELIVER and a message it has not acknowledged.
func TestForgedMaxDeliveriesAdvisoryIgnored(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"LOG_LEVEL": "warn"})
	logs := &syncBuffer{}
	w.bridgeLogging(logs)
	w.place("ORD-ADV", 500)
	w.sessionOf("ORD-ADV") // its order.placed was handled
	// …and acknowledged: the ack is asynchronous, await it.
	if !w.out.waitUntil(10*time.Second, func() bool {
		c, err := w.js.Consumer(context.Background(), streams.StreamIn, streams.ConsumerOrders)
		return err == nil && c.CachedInfo().AckFloor.Stream >= 1
	}) {
		t.Fatal("order.placed never acknowledged")
	}
	subj := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + streams.StreamIn + "." + streams.ConsumerOrders
	for _, forged := range []string{
		`{"stream":"SMARTRENT_IN","consumer":"bridge-orders","stream_seq":1,"deliveries":20}`,  // acknowledged
		`{"stream":"SMARTRENT_IN","consumer":"bridge-orders","stream_seq":1,"deliveries":2}`,   // below MAX_DELIVER
		`{"stream":"SMARTRENT_IN","consumer":"bridge-devices","stream_seq":1,"deliveries":20}`, // another consumer
	} {
		if err := w.nc.Publish(subj, []byte(forged)); err != nil {
			t.Fatal(err)
		}
	}
	if !w.out.waitUntil(10*time.Second, func() bool {
		out := logs.String()
		return strings.Contains(out, "advisory for an acknowledged message; ignored") && strings.Count(out, "advisory does not match the consumer; ignored") == 2
	}) {
		t.Fatalf("the bridge did not report the forged advisories:\n%s", logs.String())
	}
	if n := len(w.out.of("ORD-ADV", events.TypeOrderFailed)); n != 0 {
		t.Fatalf("%d order.failed for a live order", n)
	}
	if _, msgs, err := streams.StreamMessages(context.Background(), w.js, streams.StreamDLQ); err != nil || len(msgs) != 0 {
		t.Fatalf("dead letters %d (%v)", len(msgs), err)
	}
}
