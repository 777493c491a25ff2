// Package demo runs the whole product on one machine: an embedded NATS
// server, the Inbank sandbox, the webhook ingress and the bridge, and plays
// the users' parts — an order service, customers, a shipping system and a
// partner in Inbank's portal — while printing a timeline of every event.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/stack"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// Config tunes a demo run.
type Config struct {
	// DataDir holds the NATS store; a temporary folder when empty.
	DataDir string
	// Interactive prints each redirect URL and waits for a person to act
	// in the sandbox's page instead of signing by itself.
	Interactive bool
	// Timeout bounds the whole run (not in interactive mode).
	Timeout time.Duration
	// Out receives the timeline and the summary.
	Out io.Writer
}

// scenario is one order and what should become of it.
type scenario struct {
	id, what, want string
	order          events.OrderPlaced
	customer       func(f *inbanktest.Fake, session string) error
	ship, portal   bool
}

const demoSecret = "demo-callback-secret-not-for-production"

// Run runs the demo and returns nil when every order reached its expected
// final state.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 45 * time.Second
	}
	if !cfg.Interactive {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	dir := cfg.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "smartrent-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	out := &lockedWriter{w: cfg.Out}
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%7.2fs  "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}

	st, err := stack.Start(ctx, stack.Config{
		DataDir: filepath.Join(dir, "nats"), Log: out, LogLevel: "warn", // the binaries log warnings and errors only
		Env: map[string]string{"CALLBACK_SECRET": demoSecret, "RECONCILE_INTERVAL": "1s", "ACK_WAIT": "5s"},
	})
	if err != nil {
		return err
	}
	stopAll := sync.OnceFunc(st.Stop)
	defer stopAll()
	fake := st.Fake
	say("NATS with JetStream on %s (store in %s)", st.NATSURL, dir)
	say("Inbank sandbox on %s", st.SandboxURL)
	say("webhook ingress on %s (metrics on %s)", st.Ingress.Callbacks, st.Ingress.Ops)
	say("bridge ready (metrics on %s), activation policy on-delivery", st.Bridge.Ops)

	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	codec := events.NewCodec(schemas.MustLoad())
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%8s  %-9s %-4s %-28s %s\n", "time", "order", "", "event", "details")
	watch, err := eventwatch.Watch(ctx, js, codec, []string{streams.StreamIn, streams.StreamCallbacks, streams.StreamOut}, func(s eventwatch.Seen) {
		dir := "in "
		if s.Stream == streams.StreamOut {
			dir = "out"
		}
		fmt.Fprintf(out, "%7.2fs  %-9s %-4s %-28s %s\n", time.Since(start).Seconds(), s.OrderID, dir, shortType(s.Type), details(s))
	}, func(err error) { say("undecodable event: %v", err) })
	if err != nil {
		return err
	}
	defer watch.Stop()

	pub := streams.NewPublisher(js, codec)
	shop := &shopSystems{pub: pub, codec: codec}
	scenarios := demoScenarios()
	for _, sc := range scenarios {
		if err := shop.place(ctx, sc.order); err != nil {
			return err
		}
	}
	// Each scenario runs as its user would: the customer acts once the
	// session exists, the shipping system once the rental is granted.
	var play sync.WaitGroup
	playErrs := make(chan error, len(scenarios))
	for _, sc := range scenarios {
		play.Go(func() {
			if err := playScenario(ctx, cfg, sc, watch, fake, shop, out); err != nil {
				playErrs <- fmt.Errorf("%s: %w", sc.id, err)
			}
		})
	}
	play.Wait()
	close(playErrs)
	var failures []error
	for err := range playErrs {
		failures = append(failures, err)
	}
	// Give the final events a moment to land, bounded by the run's
	// deadline; in interactive mode, until every order is done or Ctrl-C.
	finalWait := time.Until(deadlineOf(ctx, 10*time.Second))
	if cfg.Interactive {
		finalWait = 0
		fmt.Fprintln(out, "\n(waiting for every order to finish; Ctrl-C to stop)")
	}
	watch.WaitUntil(finalWait, func() bool {
		if ctx.Err() != nil {
			return true
		}
		for _, sc := range scenarios {
			if finalState(watch, sc.id) != sc.want {
				return false
			}
		}
		return true
	})
	watch.Stop() // the timeline ends where the summary starts
	ok := summary(out, watch, scenarios, fake)
	stopAll()
	if err := errors.Join(failures...); err != nil {
		return err
	}
	if !ok {
		return errors.New("not every order reached its expected state")
	}
	return nil
}

func deadlineOf(ctx context.Context, def time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(def)
}

func demoScenarios() []scenario {
	base := func(id string, net float64) events.OrderPlaced {
		return events.OrderPlaced{
			OrderID: id, Period: 24, Locale: "et-EE", Description: "Apple iPhone 16 128GB, 24 months",
			ReturnURL: "https://shop.example/orders/" + id + "/return", CancelURL: "https://shop.example/orders/" + id + "/cancel",
			HeroDevice: events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: inbanktest.EANPhone, ModelID: inbanktest.ModelPhone, ModelName: "Apple iPhone 16 128GB", NetPrice: net},
		}
	}
	sign := func(f *inbanktest.Fake, s string) error { _, err := f.Sign(s); return err }
	long := base("ORD-1002", 799)
	long.Period = 48
	laptop := base("ORD-1005", 1299)
	laptop.Description = "Apple MacBook Air 13, 36 months"
	laptop.Period = 36
	laptop.HeroDevice = events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: inbanktest.EANLaptop, ModelID: inbanktest.ModelLaptop, ModelName: "Apple MacBook Air 13 M4", NetPrice: 1299}
	withCase := base("ORD-1001", 799)
	withCase.AddOns = []events.AddOn{{CategoryCode: "add_on", ModelName: "Silicone case", NetPrice: 39}}
	return []scenario{
		{id: "ORD-1001", what: "path A: signed, shipped, delivered", want: "activated (api)", order: withCase, customer: sign, ship: true},
		{id: "ORD-1002", what: "ineligible: 48 months", want: "rejected (PERIOD_NOT_OFFERED)", order: long},
		{id: "ORD-1003", what: "declined by Inbank", want: "declined", order: base("ORD-1003", 1050), customer: sign},
		{id: "ORD-1004", what: "customer never finishes", want: "expired", order: base("ORD-1004", 599), customer: func(f *inbanktest.Fake, s string) error { return f.Expire(s) }},
		{id: "ORD-1005", what: "path B: approved in the portal", want: "activated (portal)", order: laptop, customer: sign, portal: true},
	}
}

func playScenario(ctx context.Context, cfg Config, sc scenario, watch *eventwatch.Watcher, fake *inbanktest.Fake, shop *shopSystems, out io.Writer) error {
	limit := time.Until(deadlineOf(ctx, time.Hour))
	if cfg.Interactive {
		limit = 0
	}
	if sc.customer == nil {
		return nil
	}
	if !watch.Wait(sc.id, events.TypeSessionCreated, 1, limit) {
		return errors.New("no session.created")
	}
	created := watch.Of(sc.id, events.TypeSessionCreated)[0]
	session, _ := created["sessionUuid"].(string)
	if cfg.Interactive {
		fmt.Fprintf(out, "\n>>> %s (%s): open %v and act as the customer\n\n", sc.id, sc.what, created["redirectUrl"])
	} else if err := sc.customer(fake, session); err != nil {
		return fmt.Errorf("customer: %w", err)
	}
	if !sc.ship && !sc.portal {
		return nil
	}
	granted := func() bool {
		for _, c := range watch.OfLocked(sc.id, events.TypeSessionStatusChange) {
			if c["status"] == inbankapi.SessionGranted {
				return true
			}
		}
		return false
	}
	if !watch.WaitUntil(limit, granted) {
		return errors.New("never granted")
	}
	if sc.portal {
		return fake.PortalApprove(session)
	}
	ids := []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}
	now := time.Now().UTC()
	if err := shop.publish(ctx, events.TypeDeviceShipped, sc.id, events.DeviceShipped{OrderID: sc.id, AssetIdentifiers: ids, Carrier: "Omniva", TrackingNumber: "CC123456789EE", ShippedAt: &now}); err != nil {
		return err
	}
	if !watch.Wait(sc.id, events.TypeIdentifiersAssigned, 1, limit) {
		return errors.New("identifiers never assigned")
	}
	delivered := time.Now().UTC()
	return shop.publish(ctx, events.TypeDeviceDelivered, sc.id, events.DeviceDelivered{OrderID: sc.id, DeliveredAt: &delivered})
}

// shopSystems publishes what the order service and the shipping system do.
type shopSystems struct {
	pub   *streams.Publisher
	codec *events.Codec
}

func (s *shopSystems) place(ctx context.Context, o events.OrderPlaced) error {
	return s.publish(ctx, events.TypeOrderPlaced, o.OrderID, o)
}

func (s *shopSystems) publish(ctx context.Context, typ, orderID string, data any) error {
	e, err := s.codec.New("urn:shop:demo", typ, orderID, data)
	if err != nil {
		return err
	}
	_, err = s.pub.Publish(ctx, e)
	return err
}

// finalState names where an order ended, from its events.
func finalState(w *eventwatch.Watcher, orderID string) string {
	if a := w.OfLocked(orderID, events.TypeContractActivated); len(a) > 0 {
		return fmt.Sprintf("activated (%v)", a[0]["activatedVia"])
	}
	if r := w.OfLocked(orderID, events.TypeOrderRejected); len(r) > 0 {
		return fmt.Sprintf("rejected (%v)", r[0]["reason"])
	}
	if f := w.OfLocked(orderID, events.TypeOrderFailed); len(f) > 0 {
		return fmt.Sprintf("failed (%v)", f[0]["step"])
	}
	if c := w.OfLocked(orderID, events.TypeSessionStatusChange); len(c) > 0 {
		return fmt.Sprint(c[len(c)-1]["status"])
	}
	if len(w.OfLocked(orderID, events.TypeSessionCreated)) > 0 {
		return "pending"
	}
	return "—"
}

func summary(out io.Writer, w *eventwatch.Watcher, scenarios []scenario, fake *inbanktest.Fake) bool {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "order\tscenario\texpected\tfinal\tsessions\tactivation calls\tresult")
	ok := true
	for _, sc := range scenarios {
		var final string
		w.Locked(func() { final = finalState(w, sc.id) })
		calls := 0
		for _, s := range fake.Sessions(sc.id) {
			if s.ContractUUID != "" {
				calls += fake.Activations(s.ContractUUID)
			}
		}
		result := "ok"
		if final != sc.want {
			result, ok = "MISMATCH", false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", sc.id, sc.what, sc.want, final, fake.SessionsCreated(sc.id), calls, result)
	}
	tw.Flush()
	if ok {
		fmt.Fprintln(out, "\nEvery order reached its expected state.")
	}
	return ok
}

func shortType(t string) string {
	t = strings.TrimPrefix(t, "smartrent.")
	return strings.TrimSuffix(t, ".v1")
}

// details picks the fields worth a glance for each event type.
func details(s eventwatch.Seen) string {
	d := s.Data
	var parts []string
	add := func(label string, keys ...string) {
		for _, k := range keys {
			if v, ok := d[k]; ok && v != nil && v != "" {
				parts = append(parts, fmt.Sprintf("%s=%v", label, v))
				return
			}
		}
	}
	switch s.Type {
	case events.TypeOrderPlaced:
		if h, ok := d["heroDevice"].(map[string]any); ok {
			parts = append(parts, fmt.Sprintf("model=%v net=%v", h["modelId"], h["netPrice"]))
		}
		add("period", "period")
	case events.TypeSessionCreated:
		add("session", "sessionUuid")
		if q, ok := d["quote"].(map[string]any); ok {
			parts = append(parts, fmt.Sprintf("monthly=%v EUR", q["grossMonthlyPayment"]))
		}
	case events.TypeSessionStatusChange:
		parts = append(parts, fmt.Sprintf("%v → %v", d["previousStatus"], d["status"]))
		add("contract", "contractUuid")
	case events.TypeCallbackReceived:
		add("status", "status")
	case events.TypeDeviceShipped, events.TypeIdentifiersAssigned:
		add("carrier", "carrier")
		if ids, ok := d["assetIdentifiers"].([]any); ok {
			parts = append(parts, fmt.Sprintf("identifiers=%d", len(ids)))
		}
	case events.TypeDeviceDelivered:
		add("at", "deliveredAt")
	case events.TypeContractActivated:
		add("via", "activatedVia")
		add("monthly", "grossMonthlyPayment")
	case events.TypeOrderRejected:
		add("reason", "reason")
		add("input", "inputType")
	case events.TypeOrderFailed:
		add("step", "step")
		add("status", "httpStatus")
	}
	return strings.Join(parts, "  ")
}

// lockedWriter serialises writes from the timeline and the players.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
