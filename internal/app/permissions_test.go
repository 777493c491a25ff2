package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// serverLog keeps the server's warnings and errors.
type serverLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // signalled after each line, once awaitViolation made it
}

func (l *serverLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
	if l.changed != nil {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// awaitViolation returns the violations logged once one contains want,
// or those logged until timeout. nats-server answers the client with its
// permissions error before it logs the violation, so a test that reads
// the log as soon as the client failed can find it empty (a fresh
// .ci/run did).
func (l *serverLog) awaitViolation(want string, timeout time.Duration) []string {
	l.mu.Lock()
	if l.changed == nil {
		l.changed = make(chan struct{}, 1)
	}
	changed := l.changed
	l.mu.Unlock()
	deadline := time.After(timeout)
	for {
		v := l.violations()
		if strings.Contains(strings.Join(v, "\n"), want) {
			return v
		}
		select {
		case <-changed:
		case <-deadline:
			return v
		}
	}
}
func (l *serverLog) Noticef(string, ...any)         {}
func (l *serverLog) Debugf(string, ...any)          {}
func (l *serverLog) Tracef(string, ...any)          {}
func (l *serverLog) Warnf(format string, v ...any)  { l.add(format, v...) }
func (l *serverLog) Errorf(format string, v ...any) { l.add(format, v...) }
func (l *serverLog) Fatalf(format string, v ...any) { l.add(format, v...) }
func (l *serverLog) violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, " Violation - ") {
			out = append(out, s)
		}
	}
	return out
}

var permUsers = []string{"system", "admin", "ingress", "bridge", "orders", "shipping", "analytics", "operator"}

func password(user string) string { return "pw-" + user + "-0123456789" }

// runSecureServer starts nats-server from deploy/nats/nats-server-secure.conf
// (each user's password from password) and returns its port.
func runSecureServer(t *testing.T, log *serverLog) int {
	t.Helper()
	return natstest.RunOptions(t, secureServerOptions(t), log).Addr().(*net.TCPAddr).Port
}

// secureServerOptions are deploy/nats/nats-server-secure.conf's, with
// password(user) for each user, on a free loopback port.
func secureServerOptions(t *testing.T) *server.Options {
	t.Helper()
	for _, u := range permUsers {
		t.Setenv("SMARTRENT_NATS_"+strings.ToUpper(u)+"_PASSWORD", password(u))
	}
	opts, err := server.ProcessConfigFile("../../deploy/nats/nats-server-secure.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, 0, t.TempDir(), true
	return opts
}

// TestLeastPrivilegeUsers runs the whole flow on a server started from
// deploy/nats/nats-server-secure.conf, each component as its own user:
// admin creates the topology, ingress and bridge run with PROVISION=false,
// the order service, shipping and analytics use their users, an operator
// runs smartrentctl. No permission is violated, and a forged
// max-deliveries advisory from a shop system is refused by the server.
func TestLeastPrivilegeUsers(t *testing.T) {
	slog := &serverLog{}
	port := runSecureServer(t, slog)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, err := nats.Connect(url, nats.UserInfo(user, password(user)), nats.CustomInboxPrefix(inboxOf(user)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return nc, js
	}
	ctx := context.Background()
	_, adminJS := connect("admin")
	if _, err := streams.ProvisionBridge(ctx, adminJS, streams.DefaultTopology()); err != nil {
		t.Fatalf("admin provisions: %v", err)
	}

	// Users that must never see customer data listen on everything they
	// may subscribe to, through the whole flow.
	spies := map[string]*inboxSpy{}
	for _, user := range []string{"ingress", "shipping", "analytics"} {
		nc, _ := connect(user)
		spies[user] = spy(t, nc, inboxOf(user)+".>")
	}

	fake, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	env := map[string]string{
		"NATS_URL": url, "PROVISION": "false", "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"INBANK_BASE_URL": inbankSrv.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey, "INBANK_SHOP_UUID": inbanktest.DefaultShopUUID,
		"INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode, "RECONCILE_INTERVAL": "500ms", "LOG_LEVEL": "error",
	}
	as := func(user string) func(string) string {
		return func(k string) string {
			switch k {
			case "NATS_USER":
				return user
			case "NATS_PASSWORD":
				return password(user)
			}
			return env[k]
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	ing := make(chan IngressStarted, 1)
	wg.Go(func() {
		if err := RunIngress(runCtx, nil, as("ingress"), io.Discard, ing); err != nil {
			t.Errorf("ingress: %v", err)
			close(ing)
		}
	})
	s, ok := <-ing
	if !ok {
		t.FailNow()
	}
	env["CALLBACK_BASE_URL"] = "http://" + s.Callbacks.String()
	br := make(chan BridgeStarted, 1)
	wg.Go(func() {
		if err := RunBridge(runCtx, nil, as("bridge"), io.Discard, br); err != nil {
			t.Errorf("bridge: %v", err)
			close(br)
		}
	})
	if _, ok := <-br; !ok {
		t.FailNow()
	}

	codec := events.NewCodec(schemas.MustLoad())
	ordersNC, ordersJS := connect("orders")
	out, err := eventwatch.Watch(ctx, ordersJS, codec, []string{streams.StreamOut}, nil, func(err error) { t.Errorf("invalid event: %v", err) })
	if err != nil {
		t.Fatalf("orders reads SMARTRENT_OUT: %v", err)
	}
	defer out.Stop()
	publish := func(js jetstream.JetStream, typ string, data any) {
		t.Helper()
		publishInput(ctx, t, js, codec, "urn:shop:perm", "PERM-1", typ, data)
	}
	wait := func(typ string) map[string]any {
		t.Helper()
		if !out.Wait("PERM-1", typ, 1, 30*time.Second) {
			t.Fatalf("no %s; server log: %v", typ, slog.violations())
		}
		return out.Of("PERM-1", typ)[0]
	}
	o := orderPlaced("PERM-1", 500)
	publish(ordersJS, events.TypeOrderPlaced, o)
	session := wait(events.TypeSessionCreated)["sessionUuid"].(string)
	if reply, err := ordersNC.Request("smartrent.conditions", []byte(`{"identifierType":"EAN","identifier":"`+inbanktest.EANPhone+`"}`), 10*time.Second); err != nil || !strings.Contains(string(reply.Data), "period") {
		t.Fatalf("quote service for the order service: %v %s", err, replyData(reply))
	}
	if _, err := fake.Sign(session); err != nil {
		t.Fatal(err)
	}
	wait(events.TypeSessionStatusChange)
	_, shippingJS := connect("shipping")
	publish(shippingJS, events.TypeDeviceShipped, events.DeviceShipped{OrderID: "PERM-1", AssetIdentifiers: imei})
	wait(events.TypeIdentifiersAssigned)
	publish(shippingJS, events.TypeDeviceDelivered, events.DeviceDelivered{OrderID: "PERM-1"})
	wait(events.TypeContractActivated)

	// Analytics: the durable consumer admin created from
	// deploy/nats/consumers-out, which the analytics user only reads.
	var analyticsCfg jetstream.ConsumerConfig
	if b, err := os.ReadFile("../../deploy/nats/consumers-out/analytics-activations.json"); err != nil || json.Unmarshal(b, &analyticsCfg) != nil {
		t.Fatalf("consumers-out/analytics-activations.json: %v", err)
	}
	if _, err := adminJS.CreateConsumer(ctx, streams.StreamOut, analyticsCfg); err != nil {
		t.Fatalf("admin creates the analytics durable: %v", err)
	}
	_, analyticsJS := connect("analytics")
	cons, err := analyticsJS.Consumer(ctx, streams.StreamOut, analyticsCfg.Durable)
	if err != nil {
		t.Fatalf("analytics consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got != 1 {
		t.Fatalf("analytics read %d activations", got)
	}

	// A dead letter for the operator to replay: an order.placed that
	// breaks its schema.
	bad := &nats.Msg{Subject: events.SubjectOrderPlaced, Header: nats.Header{jetstream.MsgIDHeader: {"perm-bad-1"}},
		Data: []byte(`{"specversion":"1.0","id":"perm-bad-1","source":"urn:shop","type":"smartrent.order.placed.v1","subject":"PERM-BAD","data":{"orderId":"PERM-BAD"}}`)}
	if _, err := ordersJS.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if !out.Wait("PERM-BAD", events.TypeOrderRejected, 1, 30*time.Second) {
		t.Fatal("the invalid order.placed was not rejected")
	}
	var dlqSeq string
	if !out.WaitUntil(10*time.Second, func() bool {
		_, msgs, err := streams.StreamMessages(ctx, adminJS, streams.StreamDLQ)
		if err == nil && len(msgs) == 1 {
			dlqSeq = fmt.Sprint(msgs[0].Sequence)
		}
		return dlqSeq != ""
	}) {
		t.Fatal("no dead letter")
	}

	// An operator: order state, reconcile, dead letters (replayed by a bridge).
	// (its user and password as flags, as with the nats CLI; or in the URL)
	opURL := fmt.Sprintf("nats://operator:%s@127.0.0.1:%d", password("operator"), port)
	asOperator := []string{"--server", url, "--user", "operator", "--password", password("operator")}
	for _, args := range [][]string{{"orders", "get", "PERM-1"}, {"orders", "reconcile", "PERM-1"}, {"orders", "list", "--all"}, {"dlq", "list"}, {"dlq", "replay", "--all", "--dry-run"}, {"dlq", "replay", dlqSeq}} {
		var stdout, stderr strings.Builder
		if code := ctl.Run(ctx, append(args, asOperator...), &stdout, &stderr, func(string) string { return "" }); code != ctl.ExitOK {
			t.Errorf("smartrentctl %v as operator: exit %d: %s", args, code, stderr.String())
		}
	}
	var listed strings.Builder
	if code := ctl.Run(ctx, []string{"--nats-url", opURL, "orders", "list", "-o", "json"}, &listed, io.Discard, func(string) string { return "" }); code != ctl.ExitOK || !strings.Contains(listed.String(), "PERM-1") {
		t.Errorf("smartrentctl orders list (the open-order index) as operator: exit %d: %s", code, listed.String())
	}

	if v := slog.violations(); len(v) > 0 {
		t.Fatalf("permission violations in the flow:\n%s", strings.Join(v, "\n"))
	}

	// A shop system cannot forge the server's advisory that fails an order.
	shippingNC, _ := connect("shipping")
	shippingNC.Publish("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.SMARTRENT_IN.bridge-orders", []byte(`{"stream_seq":1,"deliveries":20}`))
	shippingNC.Flush()
	if !out.WaitUntil(5*time.Second, func() bool { return len(slog.violations()) > 0 }) {
		t.Fatal("the forged advisory was not refused")
	}
	if v := slog.violations(); len(v) != 1 || !strings.Contains(v[0], "$JS.EVENT.ADVISORY") {
		t.Fatalf("violations %v", v)
	}
	if n := len(out.Of("PERM-1", events.TypeOrderFailed)); n != 0 {
		t.Fatalf("%d order.failed", n)
	}

	// The operator's credential cannot publish inputs: a device.delivered
	// from it would activate a contract.
	if !publishRefused(t, url, "operator", events.SubjectDeviceDelivered) {
		t.Error("operator may publish smartrent.in.device.delivered")
	}
	// No user deletes or changes another's consumer: orders tries the
	// analytics durable both ways, analytics tries to make its own.
	for _, try := range []struct{ user, subject string }{
		{"orders", "$JS.API.CONSUMER.DELETE." + streams.StreamOut + "." + analyticsCfg.Durable},
		{"orders", "$JS.API.CONSUMER.CREATE." + streams.StreamOut + "." + analyticsCfg.Durable + ".smartrent.out.session.created"},
		{"orders", "$JS.API.CONSUMER.CREATE." + streams.StreamOut + "." + analyticsCfg.Durable},
		{"analytics", "$JS.API.CONSUMER.CREATE." + streams.StreamOut + ".mine.smartrent.out.>"},
		{"analytics", "$JS.API.CONSUMER.DELETE." + streams.StreamOut + "." + analyticsCfg.Durable},
	} {
		if !publishRefused(t, url, try.user, try.subject) {
			t.Errorf("%s may publish %s", try.user, try.subject)
		}
	}
	if _, err := analyticsJS.Consumer(ctx, streams.StreamOut, analyticsCfg.Durable); err != nil {
		t.Errorf("the analytics durable after the attempts: %v", err)
	}
	for user, s := range spies {
		if n, leak := s.holding(customerData...); leak != "" {
			t.Errorf("%s received customer data (%q) among %d messages on its inbox", user, leak, n)
		}
	}
	// No user reads another's replies: the shared inbox and every other
	// user's prefix are refused by the server.
	for _, user := range permUsers[1:] {
		for _, other := range append([]string{"_INBOX"}, inboxesBut(user)...) {
			if !subscriptionRefused(t, url, user, other+".>") {
				t.Errorf("%s may subscribe to %s.>", user, other)
			}
		}
	}
}

// customerData is what order() puts in order.placed about the customer.
var customerData = []string{"49403136515", "Maasikas", "mari@example.ee", "+37255555555"}

// inboxOf is the inbox prefix nats-server-secure.conf gives user.
func inboxOf(user string) string { return "_INBOX_" + user }

func inboxesBut(user string) []string {
	var out []string
	for _, u := range permUsers[1:] {
		if u != user {
			out = append(out, inboxOf(u))
		}
	}
	return out
}

// subscriptionRefused subscribes to subject as user and reports whether
// the server refused it.
func subscriptionRefused(t *testing.T, url, user, subject string) bool {
	t.Helper()
	return refused(t, url, user, func(nc *nats.Conn) error {
		_, err := nc.SubscribeSync(subject)
		return err
	})
}

// publishRefused publishes on subject as user and reports whether the
// server refused it.
func publishRefused(t *testing.T, url, user, subject string) bool {
	t.Helper()
	return refused(t, url, user, func(nc *nats.Conn) error { return nc.Publish(subject, []byte(`{}`)) })
}

// refused does act on a connection of user's and reports whether the
// server answered it with a permissions violation.
func refused(t *testing.T, url, user string, act func(*nats.Conn) error) bool {
	t.Helper()
	errs := make(chan error, 4)
	nc, err := nats.Connect(url, nats.UserInfo(user, password(user)), nats.CustomInboxPrefix(inboxOf(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	defer nc.Close()
	if err := act(nc); err != nil {
		return errors.Is(err, nats.ErrPermissionViolation)
	}
	nc.Flush() // the server answers the act (with -ERR if refused) before the PONG
	select {
	case err := <-errs:
		return errors.Is(err, nats.ErrPermissionViolation)
	case <-time.After(5 * time.Second):
		return false
	}
}

// inboxSpy keeps what a subscription received.
type inboxSpy struct {
	mu   sync.Mutex
	msgs [][]byte
}

func spy(t *testing.T, nc *nats.Conn, subject string) *inboxSpy {
	t.Helper()
	s := &inboxSpy{}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.msgs = append(s.msgs, append([]byte(nil), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// holding reports how many messages the spy saw and the first of needles
// one of them contains.
func (s *inboxSpy) holding(needles ...string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		for _, n := range needles {
			if strings.Contains(string(m), n) {
				return len(s.msgs), n
			}
		}
	}
	return len(s.msgs), ""
}

func replyData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestMissingPermissionStopsWithItsSubject: a bridge run as a NATS user
// that lacks a permission it needs (admin may use the JetStream API only,
// so its KV writes are refused) stops with an error naming the refused
// subject, instead of waiting for an acknowledgement that never comes.
func TestMissingPermissionStopsWithItsSubject(t *testing.T) {
	env := map[string]string{
		"NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", runSecureServer(t, &serverLog{})), "NATS_USER": "admin", "NATS_PASSWORD": password("admin"),
		"NATS_INBOX_PREFIX": inboxOf("admin"), "PROVISION": "true", "CALLBACK_SECRET": testSecret, "CALLBACK_BASE_URL": "http://127.0.0.1:1",
		"METRICS_ADDR": "127.0.0.1:0", "INBANK_BASE_URL": "http://127.0.0.1:1", "INBANK_API_KEY": inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID": inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode, "LOG_LEVEL": "error",
	}
	done := make(chan error, 1)
	go func() {
		done <- RunBridge(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	}()
	select {
	case err := <-done:
		if !errors.Is(err, natsconn.ErrPermissionDenied) || !strings.Contains(err.Error(), "$KV.") {
			t.Fatalf("bridge stopped with %v, want ErrPermissionDenied naming the refused $KV subject", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the bridge still waits, a minute after NATS refused its write")
	}
}

// publishInput publishes an input event for orderID as a shop's system
// with js (its own NATS identity) would.
func publishInput(ctx context.Context, t *testing.T, js jetstream.JetStream, codec *events.Codec, source, orderID, typ string, data any) {
	t.Helper()
	e, err := codec.New(source, typ, orderID, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.NewPublisher(js, codec).Publish(ctx, e); err != nil {
		t.Fatalf("publish %s: %v", typ, err)
	}
}
