// Command order-service is what a shop's order service does with the Smart
// Rent bridge: publish smartrent.order.placed.v1 (a CloudEvent, structured
// mode, Nats-Msg-Id = event id) and wait for the order's session.created to
// redirect the customer. Copy it; it uses only nats.go and the CloudEvents
// SDK.
//
//	go run ./examples/order-service --order ORD-42 --price 799
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "order-service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("order-service", flag.ContinueOnError)
	url := fs.String("nats-url", nats.DefaultURL, "NATS server")
	// Replies (JetStream acks, consumer fetches) come on subjects under
	// this prefix: with deploy/nats/nats-server-secure.conf the orders user
	// may subscribe there only, never to the shared _INBOX.> where every
	// other user's replies would be.
	inbox := fs.String("nats-inbox-prefix", "_INBOX_orders", "prefix of the subjects replies come on")
	orderID := fs.String("order", "ORD-"+time.Now().Format("150405"), "order id")
	price := fs.Float64("price", 799, "net price of the phone")
	period := fs.Int("period", 24, "months")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.CustomInboxPrefix(*inbox))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// Read the answers from a point in time before the publish, so the
	// answer cannot be missed. Not DeliverNewPolicy: an ordered consumer
	// re-creates its server-side consumer on every Next, and "new" would
	// then mean "after the answer". The margin covers a clock that differs
	// from the server's; other orders' events are skipped below.
	since := time.Now().Add(-time.Minute)
	cons, err := js.OrderedConsumer(ctx, "SMARTRENT_OUT", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"smartrent.out.session.created", "smartrent.out.order.rejected", "smartrent.out.order.failed"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return err
	}

	e := event.New()
	e.SetID(uuid.NewString())
	e.SetSource("urn:shop:order-service")
	e.SetType("smartrent.order.placed.v1")
	e.SetSubject(*orderID)
	e.SetTime(time.Now())
	e.SetDataSchema("urn:smartrent:schema:smartrent.order.placed.v1")
	err = e.SetData(event.ApplicationJSON, map[string]any{
		"orderId": *orderID, "period": *period, "locale": "et-EE",
		"description": "Apple iPhone 16 128GB rental",
		"returnUrl":   "https://shop.example/orders/" + *orderID + "/return",
		"cancelUrl":   "https://shop.example/orders/" + *orderID + "/cancel",
		"heroDevice": map[string]any{
			"identifierType": "EAN", "identifier": "0195949821899",
			"modelId": "apple-iphone-16-128gb", "modelName": "Apple iPhone 16 128GB", "netPrice": *price,
		},
	})
	if err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: "smartrent.in.order.placed", Data: body, Header: nats.Header{}}
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(jetstream.MsgIDHeader, e.ID()) // a retried publish is stored once
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish order.placed: %w", err)
	}
	fmt.Fprintf(out, "placed %s\n", *orderID)

	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	for {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return fmt.Errorf("no answer for %s: %w", *orderID, err)
		}
		var got event.Event
		if err := json.Unmarshal(m.Data(), &got); err != nil || got.Subject() != *orderID {
			continue // another order's event
		}
		var data map[string]any
		if err := got.DataAs(&data); err != nil {
			return err
		}
		switch got.Type() {
		case "smartrent.session.created.v1":
			quote, _ := data["quote"].(map[string]any)
			fmt.Fprintf(out, "redirect the customer to %v (%v EUR a month)\n", data["redirectUrl"], quote["grossMonthlyPayment"])
			return nil
		case "smartrent.order.rejected.v1":
			return fmt.Errorf("rejected: %v: %v", data["reason"], data["message"])
		default:
			return errors.New("failed: " + fmt.Sprint(data["message"]))
		}
	}
}
