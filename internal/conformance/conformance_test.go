// Package conformance checks the public contract from outside Go: Node.js
// programs in conformance/ read what the running product published with
// the CloudEvents JavaScript SDK, the NATS JavaScript client and ajv, and
// parse schemas/asyncapi.yaml with the AsyncAPI reference parser. Our own
// codec cannot see a contract error that it makes itself (data_base64 was
// one); these clients can.
package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/smartrent-bridge/bridge/internal/apptest"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

var dir = filepath.Join("..", "..", "conformance")

// node returns the conformance folder with its npm packages installed from
// the committed lock file (again only when the lock file changed).
func node(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed: the conformance suite needs Node.js 20 (Debian package nodejs)")
		}
		t.Skip("node is not installed here; the JavaScript conformance suite is not run")
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	stamp := filepath.Join(dir, "node_modules", ".smartrent-lock-sha256")
	if got, _ := os.ReadFile(stamp); string(got) == hex.EncodeToString(sum[:]) {
		return dir
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runNode(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = node(t)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if errOut.Len() > 0 {
		t.Logf("node %s (stderr):\n%s", args[0], errOut.String())
	}
	return out.String(), err
}

// TestAsyncAPIAndSchemasOutsideGo parses schemas/asyncapi.yaml with
// @asyncapi/parser 3.x (no error diagnostics allowed) and compiles every
// JSON Schema in ajv (draft 2020-12), a second validator besides ours.
func TestAsyncAPIAndSchemasOutsideGo(t *testing.T) {
	out, err := runNode(t, "check-contract-docs.mjs", filepath.Join("..", "schemas"))
	if err != nil {
		t.Fatalf("asyncapi/ajv check failed: %v\n%s", err, out)
	}
	var counts struct{ Schemas, Channels, Messages int }
	if err := json.Unmarshal([]byte(out), &counts); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if want := len(schemas.MustLoad().Types()); counts.Schemas != want || counts.Messages != want {
		t.Fatalf("parsed %+v, want %d schemas and messages", counts, want)
	}
}

// TestEventsReadByJavaScriptClients runs flows that produce every output
// type, a callback event and dead letters (and one order placed from
// JavaScript), then lets the JavaScript program read and check every
// message.
func TestEventsReadByJavaScriptClients(t *testing.T) {
	node(t) // install before the product starts its timers
	w := apptest.Start(t)
	codec := events.NewCodec(schemas.MustLoad())
	pub := streams.NewPublisher(w.JS, codec)
	ctx := context.Background()
	publish := func(typ, orderID string, data any) {
		t.Helper()
		e, err := codec.New("urn:shop:conformance", typ, orderID, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	order := func(id string, period int) events.OrderPlaced {
		return events.OrderPlaced{
			OrderID: id, Period: period, Locale: "et-EE", Description: "iPhone 16 rental",
			ReturnURL: "https://shop.example/r", CancelURL: "https://shop.example/c",
			HeroDevice: events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: inbanktest.EANPhone, ModelID: inbanktest.ModelPhone, ModelName: "Apple iPhone 16", NetPrice: 500},
		}
	}

	// Path A: session.created, status_changed ×2, identifiers_assigned,
	// contract.activated, and the ingress's callback events.
	publish(events.TypeOrderPlaced, "CF-A", order("CF-A", 24))
	session := w.Wait(t, "CF-A", events.TypeSessionCreated, 1)[0]["sessionUuid"].(string)
	if _, err := w.Fake.Sign(session); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "CF-A", events.TypeSessionStatusChange, 1)
	imei := []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}
	publish(events.TypeDeviceShipped, "CF-A", events.DeviceShipped{OrderID: "CF-A", AssetIdentifiers: imei})
	w.Wait(t, "CF-A", events.TypeIdentifiersAssigned, 1)
	publish(events.TypeDeviceDelivered, "CF-A", events.DeviceDelivered{OrderID: "CF-A"})
	w.Wait(t, "CF-A", events.TypeContractActivated, 1)
	w.Wait(t, "CF-A", events.TypeSessionStatusChange, 2)

	// A business rejection.
	publish(events.TypeOrderPlaced, "CF-R", order("CF-R", 48))
	w.Wait(t, "CF-R", events.TypeOrderRejected, 1)

	// Inbank refuses the session: order.failed and a dead letter.
	w.Fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 422})
	publish(events.TypeOrderPlaced, "CF-F", order("CF-F", 24))
	w.Wait(t, "CF-F", events.TypeOrderFailed, 1)
	w.Fake.ClearFaults()

	// An order.placed that breaks its schema: order.rejected and a dead letter.
	raw := `{"specversion":"1.0","id":"cf-bad-1","source":"urn:shop","type":"smartrent.order.placed.v1","subject":"CF-V","datacontenttype":"application/json","data":{"orderId":"CF-V","period":24}}`
	if _, err := pub.PublishMsg(ctx, &nats.Msg{Subject: events.SubjectOrderPlaced, Data: []byte(raw), Header: nats.Header{"Nats-Msg-Id": {"cf-bad-1"}}}); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "CF-V", events.TypeOrderRejected, 1)

	// An order placed by a producer in another language (the JS SDK's
	// structured mode, the NATS JS client) gets its session too.
	if out, err := runNode(t, "publish-order.mjs", w.NATSURL, "CF-JS"); err != nil {
		t.Fatalf("publish-order.mjs: %v\n%s", err, out)
	}
	w.Wait(t, "CF-JS", events.TypeSessionCreated, 1)

	out, err := runNode(t, "check-events.mjs", w.NATSURL, filepath.Join("..", "schemas"))
	var got struct {
		Types       map[string]int
		DeadLetters int
		Failures    []string
	}
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil {
		t.Fatalf("check-events: %v (%v): %q", err, jerr, out)
	}
	for _, f := range got.Failures {
		t.Error(f)
	}
	if err != nil && len(got.Failures) == 0 {
		t.Fatalf("check-events: %v", err)
	}
	want := []string{events.TypeSessionCreated, events.TypeSessionStatusChange, events.TypeIdentifiersAssigned,
		events.TypeContractActivated, events.TypeOrderRejected, events.TypeOrderFailed, events.TypeCallbackReceived}
	for _, typ := range want {
		if got.Types[typ] == 0 {
			t.Errorf("the JavaScript reader saw no %s: %v", typ, got.Types)
		}
	}
	if got.DeadLetters < 2 {
		t.Errorf("the JavaScript reader saw %d dead letters, want 2", got.DeadLetters)
	}
	if extra := slices.DeleteFunc(mapsKeys(got.Types), func(k string) bool { return slices.Contains(want, k) }); len(extra) > 0 {
		t.Errorf("unexpected event types %v", extra)
	}
}

func mapsKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
