package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

const lvShop = "lv-web"

// TestTwoShopsOneFailing runs orders for two countries' shops through one
// bridge while the second shop's Inbank answers 503: the first shop's
// orders complete meanwhile, and once the second recovers its orders
// complete too, each exactly once.
func TestTwoShopsOneFailing(t *testing.T) {
	lv, lvSrv := inbanktest.NewServer(t, inbanktest.Config{APIKey: "lv-api-key", ShopUUID: "0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001", ProductCode: "smart_rent_lv"})
	dir := t.TempDir()
	shopsFile := filepath.Join(dir, "shops.yaml")
	os.WriteFile(shopsFile, []byte(fmt.Sprintf(`shops:
  %s:
    baseUrl: %s
    shopUuid: 0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001
    productCode: smart_rent_lv
    apiKey: {env: LV_INBANK_KEY}
    concurrency: 8
`, lvShop, lvSrv.URL)), 0o600)
	w := newWorld(t, inbanktest.Config{}, map[string]string{"INBANK_SHOPS_FILE": shopsFile, "LV_INBANK_KEY": "lv-api-key", "RECONCILE_INTERVAL": "500ms"})
	w.bridge()

	lv.SetFault(inbanktest.AllOperations, inbanktest.Fault{Status: 503, RetryAfterSeconds: 1})
	const n = 10
	for i := range n {
		ee, lvOrder := orderPlaced(fmt.Sprintf("EE-%d", i), 500), orderPlaced(fmt.Sprintf("SAME-%d", i), 500)
		w.publish(events.TypeOrderPlaced, ee.OrderID, ee)
		lvOrder.Shop = lvShop
		w.publish(events.TypeOrderPlaced, lvOrder.OrderID, lvOrder)
		// The default shop has an order with the same id: shops never meet.
		same := orderPlaced(lvOrder.OrderID, 600)
		w.publish(events.TypeOrderPlaced, same.OrderID, same)
	}
	start := time.Now()
	for i := range n {
		for _, id := range []string{fmt.Sprintf("EE-%d", i), fmt.Sprintf("SAME-%d", i)} {
			s := w.sessionOf(id)
			w.fake.Sign(s)
			w.ship(id, imei)
			w.deliver(id)
		}
	}
	for i := range n {
		w.out.wait(fmt.Sprintf("EE-%d", i), events.TypeContractActivated, 1)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the healthy shop's orders took %v while the other shop failed", d)
	}
	if got := lv.SessionsCreated("SAME-0"); got != 0 {
		t.Fatalf("the failing shop created %d sessions", got)
	}

	lv.ClearFaults() // the second country's Inbank recovers
	lvSession := func(id string) string {
		var uuid string
		if !w.out.waitUntil(30*time.Second, func() bool {
			for _, e := range w.out.OfLocked(id, events.TypeSessionCreated) {
				if e["shop"] == lvShop {
					uuid, _ = e["sessionUuid"].(string)
				}
			}
			return uuid != ""
		}) {
			t.Fatalf("%s: no session for %s", id, lvShop)
		}
		return uuid
	}
	for i := range n {
		id := fmt.Sprintf("SAME-%d", i)
		if _, err := lv.Sign(lvSession(id)); err != nil {
			t.Fatal(err)
		}
		w.publish(events.TypeDeviceShipped, id, events.DeviceShipped{OrderID: id, Shop: lvShop, AssetIdentifiers: imei})
		w.publish(events.TypeDeviceDelivered, id, events.DeviceDelivered{OrderID: id, Shop: lvShop})
	}
	for i := range n {
		id := fmt.Sprintf("SAME-%d", i)
		if !w.out.waitUntil(30*time.Second, func() bool {
			c := 0
			for _, e := range w.out.OfLocked(id, events.TypeContractActivated) {
				if e["shop"] == lvShop {
					c++
				}
			}
			return c == 1
		}) {
			t.Fatalf("%s of %s never activated", id, lvShop)
		}
		for _, s := range lv.Sessions(id) {
			if s.ContractUUID != "" && lv.Activations(s.ContractUUID) > 1 {
				t.Fatalf("%s: %d activations", id, lv.Activations(s.ContractUUID))
			}
		}
		if got := lv.SessionsCreated(id); got != 1 {
			t.Fatalf("%s: %d sessions at %s", id, got, lvShop)
		}
		// Both shops' orders with this id are separate: one activation event each.
		var shopsSeen []string
		for _, e := range w.out.Of(id, events.TypeContractActivated) {
			shopsSeen = append(shopsSeen, fmt.Sprint(e["shop"]))
		}
		if len(shopsSeen) != 2 {
			t.Fatalf("%s: activations for shops %v, want the default's and %s's", id, shopsSeen, lvShop)
		}
	}
}

func TestShopsFileProblemsStopTheBridge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shops.yaml")
	os.WriteFile(path, []byte("shops:\n  lv-web:\n    baseUrl: nope\n    apiKey: {file: /nonexistent}\n    colour: blue\n"), 0o600)
	env := map[string]string{
		"INBANK_BASE_URL": "http://127.0.0.1:1", "INBANK_API_KEY": "k", "INBANK_SHOP_UUID": "s",
		"CALLBACK_BASE_URL": "http://cb", "CALLBACK_SECRET": testSecret, "INBANK_SHOPS_FILE": path,
		"NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "300ms",
	}
	err := RunBridge(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(path, []byte("shops:\n  lv-web:\n    baseUrl: nope\n    apiKey: {file: /nonexistent}\n"), 0o600)
	err = RunBridge(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "baseUrl") || !strings.Contains(err.Error(), "shopUuid is required") || !strings.Contains(err.Error(), "API key file") {
		t.Fatalf("err = %v", err)
	}
}

// TestAPIKeyFileReloaded: after the key file changes and the bridge is
// told to reload (SIGHUP), the next calls use the new key.
func TestAPIKeyFileReloaded(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "inbank.key")
	os.WriteFile(keyFile, []byte(inbanktest.DefaultAPIKey+"\n"), 0o600)
	w := newWorld(t, inbanktest.Config{}, map[string]string{"INBANK_API_KEY": "", "INBANK_API_KEY_FILE": keyFile})
	reload := make(chan struct{})
	w.bridge(BridgeOptions{Reload: reload})
	w.place("KEY-1", 500)
	w.sessionOf("KEY-1")
	os.WriteFile(keyFile, []byte("a-rotated-key-the-fake-does-not-know"), 0o600)
	reload <- struct{}{}
	// A reload is done when a call with the new key fails: retry placing
	// orders until Inbank says 401 for one of them.
	for i := 2; ; i++ {
		id := fmt.Sprintf("KEY-%d", i)
		w.place(id, 500)
		if w.out.waitUntil(5*time.Second, func() bool {
			return len(w.out.OfLocked(id, events.TypeSessionCreated))+len(w.out.OfLocked(id, events.TypeOrderFailed)) > 0
		}) && len(w.out.Of(id, events.TypeOrderFailed)) > 0 {
			f := w.out.Of(id, events.TypeOrderFailed)[0]
			if f["httpStatus"] != 401.0 {
				t.Fatalf("order.failed = %v, want Inbank's 401 for the rotated key", f)
			}
			return
		}
		if i > 20 {
			t.Fatal("the rotated key was never used")
		}
	}
}
