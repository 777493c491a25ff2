// Command barebridge is the floor our bridge is measured against in
// `make bench`: a stateless bridge that consumes order.placed, reads the
// model's rental conditions (cached), makes the calculation and the
// session creation at once, publishes session.created and acknowledges.
// It keeps no state (no KV, no claims, no outbox), so a crash between the
// session and its event loses the event or, on redelivery, creates a
// second session: exactly what the product must not do, and what it pays
// for.
//
// Its Inbank requests are the bridge's, byte for byte: the same client,
// the same request builders of package order and the same callback URLs.
// It is a benchmark tool only; nothing ships it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

func main() {
	fs := flag.NewFlagSet("barebridge", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: barebridge (settings from the environment: NATS_URL, INBANK_BASE_URL, INBANK_API_KEY, INBANK_SHOP_UUID, INBANK_PRODUCT_CODE, CALLBACK_BASE_URL, CALLBACK_SECRET, CONCURRENCY, READY_ADDR)")
	}
	fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		slog.Error("barebridge", "err", err)
		os.Exit(1)
	}
}

// bare is the whole stateless bridge.
type bare struct {
	api         inbank.API
	conditions  *inbank.Conditions
	tokens      *callbacktoken.Signer
	js          jetstream.JetStream
	productCode string
	callbacks   string
	sessionTTL  time.Duration
}

func run(ctx context.Context) error {
	env := os.Getenv
	concurrency, _ := strconv.Atoi(env("CONCURRENCY"))
	concurrency = max(concurrency, 1)
	client, err := inbank.New(inbank.Config{BaseURL: env("INBANK_BASE_URL"), APIKey: inbank.Secret(env("INBANK_API_KEY")), ShopUUID: env("INBANK_SHOP_UUID"), Timeout: 15 * time.Second},
		inbank.WithHTTPClient(&http.Client{Transport: inbank.Transport(2 * concurrency)})) // as the bridge sizes its own
	if err != nil {
		return err
	}
	tokens, err := callbacktoken.New(callbacktoken.Parse(env("CALLBACK_SECRET")))
	if err != nil {
		return err
	}
	nc, err := nats.Connect(env("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	b := &bare{api: client, conditions: inbank.NewConditions(client, nil), tokens: tokens, js: js,
		productCode: env("INBANK_PRODUCT_CODE"), callbacks: env("CALLBACK_BASE_URL"), sessionTTL: 24 * time.Hour}
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.StreamIn, jetstream.ConsumerConfig{
		Durable: "bare-orders", FilterSubject: events.SubjectOrderPlaced, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: concurrency,
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	slots := make(chan struct{}, concurrency)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			if err := b.handle(ctx, m); err != nil {
				slog.Warn("order not handled", "err", err)
				m.Nak()
				return
			}
			m.Ack()
		}()
	}, jetstream.PullMaxMessages(concurrency))
	if err != nil {
		return err
	}
	defer cc.Stop()
	if addr := env("READY_ADDR"); addr != "" {
		// Ready once listening; the profiler beside it so that `soak
		// versus -cpuprofile` can compare the floor's profile with ours.
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.Handle("/debug/pprof/allocs", pprof.Handler("allocs"))
		mux.Handle("/metrics", promhttp.Handler()) // the Go runtime's figures: bytes allocated per order in soak versus
		srv := &http.Server{Addr: addr, Handler: mux}
		go srv.ListenAndServe()
		defer srv.Close()
	}
	<-ctx.Done()
	return nil
}

// handle turns one order.placed into its session and session.created.
func (b *bare) handle(ctx context.Context, m jetstream.Msg) error {
	var in struct {
		Data events.OrderPlaced `json:"data"`
	}
	if err := json.Unmarshal(m.Data(), &in); err != nil {
		return err
	}
	p := &in.Data
	productCode := p.ProductCode
	if productCode == "" {
		productCode = b.productCode
	}
	cond, err := b.conditions.Get(ctx, productCode, p.HeroDevice.IdentifierType, p.HeroDevice.Identifier)
	if err != nil {
		return err
	}
	insurance, rej := order.Eligibility(p, cond)
	if rej != nil {
		return rej
	}
	o := order.New(p, "", productCode, "", time.Now().UTC())
	validUntil := time.Now().Add(b.sessionTTL).Truncate(time.Second)
	type calculation struct {
		calc inbankapi.Calculation
		err  error
	}
	calculated := make(chan calculation, 1)
	go func() {
		c, err := b.api.Calculate(ctx, productCode, order.CalculationRequest(p, insurance))
		calculated <- calculation{c, err}
	}()
	created, err := b.api.CreateSession(ctx, order.SessionRequest(&o, p, insurance, validUntil, b.tokens.URL(b.callbacks, "", p.OrderID)))
	c := <-calculated
	if err = errors.Join(err, c.err); err != nil {
		return err
	}
	data, err := json.Marshal(events.SessionCreated{OrderID: p.OrderID, SessionUUID: created.UUID, RedirectURL: created.RedirectURL, ValidUntil: &validUntil, Quote: order.QuoteOf(c.calc)})
	if err != nil {
		return err
	}
	id := order.EventID(p.OrderID, events.TypeSessionCreated, created.UUID)
	body, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "urn:smartrent:barebridge", "type": events.TypeSessionCreated, "subject": p.OrderID,
		"time": time.Now().UTC(), "datacontenttype": events.ContentTypeJSON, "dataschema": schemas.ID(events.TypeSessionCreated), "data": json.RawMessage(data),
	})
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: events.SubjectSessionCreated, Data: body, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}, jetstream.MsgIDHeader: {id}}}
	_, err = b.js.PublishMsg(ctx, msg)
	return err
}
