package ctl_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/apptest"
	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
)

func runCtl(t *testing.T, w *apptest.World, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := ctl.Run(context.Background(), append([]string{"--nats-url", w.NATSURL}, args...), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func place(t *testing.T, w *apptest.World, id string) {
	t.Helper()
	body := `{"specversion":"1.0","id":"` + id + `-placed","source":"urn:test","type":"smartrent.order.placed.v1","subject":"` + id + `","datacontenttype":"application/json","data":{"orderId":"` + id + `","period":24,"locale":"et-EE","description":"d","returnUrl":"https://s.example/r","cancelUrl":"https://s.example/c","heroDevice":{"identifierType":"EAN","identifier":"0195949821899","modelId":"apple-iphone-16-128gb","modelName":"iPhone","netPrice":500}}}`
	if _, err := w.JS.Publish(context.Background(), events.SubjectOrderPlaced, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestOrdersCommands(t *testing.T) {
	w := apptest.Start(t)
	place(t, w, "CTL-1")
	session := w.Wait(t, "CTL-1", events.TypeSessionCreated, 1)[0]["sessionUuid"].(string)
	w.Fake.SetCallbackPolicy(inbanktest.CallbackPolicy{DropRate: 1})
	w.Fake.Sign(session)

	// session.created stays in the stored outbox; the index entry written
	// before order.placed is acknowledged names it published.
	open, err := orderstore.OpenIndexOf(context.Background(), w.JS, "test")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if published, err := open.Published(context.Background(), ids.StateKey("", "CTL-1")); err != nil || len(published) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the order's index entry never named session.created")
		}
		<-time.After(10 * time.Millisecond)
	}
	code, out, _ := runCtl(t, w, "orders", "get", "CTL-1")
	if code != ctl.ExitOK || !strings.Contains(out, "pending") || !strings.Contains(out, "session created") || !strings.Contains(out, session) {
		t.Fatalf("orders get: %d\n%s", code, out)
	}
	if strings.Contains(out, "unpublished events") {
		t.Fatalf("orders get shows session.created unpublished:\n%s", out)
	}
	// The callback was dropped: reconcile now, without waiting for the interval.
	code, out, errOut := runCtl(t, w, "orders", "reconcile", "CTL-1")
	if code != ctl.ExitOK || !strings.Contains(out, "reconciled: granted") {
		t.Fatalf("orders reconcile: %d %q %q", code, out, errOut)
	}
	code, out, _ = runCtl(t, w, "--json", "orders", "get", "CTL-1")
	var o struct {
		State   string `json:"state"`
		History []any  `json:"history"`
	}
	if code != ctl.ExitOK || json.Unmarshal([]byte(out), &o) != nil || o.State != "granted" || len(o.History) < 2 {
		t.Fatalf("orders get --json: %d %s", code, out)
	}
	code, out, _ = runCtl(t, w, "orders", "list", "--state", "granted")
	if code != ctl.ExitOK || !strings.Contains(out, "CTL-1") {
		t.Fatalf("orders list: %d\n%s", code, out)
	}
	code, out, _ = runCtl(t, w, "--json", "orders", "list", "--state", "granted", "--older-than", "1h")
	if code != ctl.ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("orders list --older-than: %d %s", code, out)
	}
	if code, _, _ := runCtl(t, w, "orders", "get", "NOPE"); code != ctl.ExitNotFound {
		t.Fatalf("unknown order: exit %d", code)
	}
	if code, _, _ := runCtl(t, w, "orders", "reconcile", "NOPE"); code != ctl.ExitNotFound {
		t.Fatalf("reconcile unknown order: exit %d", code)
	}
	if code, _, _ := runCtl(t, w, "orders", "frobnicate"); code != ctl.ExitUsage {
		t.Fatalf("bad command: exit %d", code)
	}
}

func TestDeadLetterReplayThatThenSucceeds(t *testing.T) {
	w := apptest.Start(t)
	w.Fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 422})
	place(t, w, "CTL-D")
	w.Wait(t, "CTL-D", events.TypeOrderFailed, 1)
	var list []struct {
		Seq     uint64 `json:"seq"`
		Reason  string `json:"reason"`
		OrderID string `json:"orderId"`
	}
	// The dead letter is written right after order.failed.
	if !w.Out.WaitUntil(10*time.Second, func() bool {
		_, out, _ := runCtl(t, w, "--json", "dlq", "list")
		json.Unmarshal([]byte(out), &list)
		return len(list) == 1
	}) {
		t.Fatalf("dlq list: %v", list)
	}
	if list[0].OrderID != "CTL-D" || !strings.Contains(list[0].Reason, "422") {
		t.Fatalf("dlq list = %+v", list)
	}
	seq := strconv.FormatUint(list[0].Seq, 10)
	code, out, _ := runCtl(t, w, "dlq", "show", seq)
	if code != ctl.ExitOK || !strings.Contains(out, "Smartrent-Dlq-Reason") || !strings.Contains(out, `"orderId":"CTL-D"`) {
		t.Fatalf("dlq show: %d\n%s", code, out)
	}
	_, table, _ := runCtl(t, w, "dlq", "list", "--subject", events.SubjectOrderPlaced)
	if !strings.Contains(table, "CTL-D") {
		t.Fatalf("dlq list --subject:\n%s", table)
	}

	w.Fake.ClearFaults() // the cause is fixed; replay
	code, out, errOut := runCtl(t, w, "dlq", "replay", seq)
	if code != ctl.ExitOK || !strings.Contains(out, "replayed "+seq) {
		t.Fatalf("dlq replay: %d %q %q", code, out, errOut)
	}
	w.Wait(t, "CTL-D", events.TypeSessionCreated, 1)
	if code, out, _ := runCtl(t, w, "--json", "dlq", "list"); code != ctl.ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("the replayed dead letter is still there: %s", out)
	}
	if code, _, _ := runCtl(t, w, "dlq", "show", seq); code != ctl.ExitNotFound {
		t.Fatalf("dlq show of a replayed letter: exit %d", code)
	}
	if code, _, _ := runCtl(t, w, "dlq", "replay", "999"); code != ctl.ExitNotFound {
		t.Fatalf("replay of an unknown letter: exit %d", code)
	}
	if code, _, _ := runCtl(t, w, "dlq", "replay"); code != ctl.ExitUsage {
		t.Fatalf("replay without a target: exit %d", code)
	}
}

func TestUnreachableNATS(t *testing.T) {
	var out, errOut strings.Builder
	code := ctl.Run(context.Background(), []string{"--nats-url", "nats://127.0.0.1:1", "orders", "get", "x"}, &out, &errOut, func(string) string { return "" })
	if code != ctl.ExitError || !strings.Contains(errOut.String(), "cannot reach NATS") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}
