// Command shipping is what a shop's shipping system does with the Smart
// Rent bridge: publish smartrent.device.shipped.v1 with the device's
// identifiers, and smartrent.device.delivered.v1 when the customer has it.
// Copy it; it uses only nats.go and the CloudEvents SDK.
//
//	go run ./examples/shipping --order ORD-42 --event shipped --imei 356938035643809
//	go run ./examples/shipping --order ORD-42 --event delivered
package main

import (
	"context"
	"encoding/json"
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
		fmt.Fprintln(os.Stderr, "shipping:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("shipping", flag.ContinueOnError)
	url := fs.String("nats-url", nats.DefaultURL, "NATS server")
	// Replies (JetStream acks, consumer fetches) come on subjects under
	// this prefix: with deploy/nats/nats-server-secure.conf the shipping user
	// may subscribe there only, never to the shared _INBOX.> where every
	// other user's replies would be.
	inbox := fs.String("nats-inbox-prefix", "_INBOX_shipping", "prefix of the subjects replies come on")
	orderID := fs.String("order", "", "order id (required)")
	kind := fs.String("event", "shipped", "shipped or delivered")
	imei := fs.String("imei", "", "the device's IMEI (or use --serial)")
	serial := fs.String("serial", "", "the device's serial number")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *orderID == "" {
		return fmt.Errorf("--order is required")
	}
	var ids []map[string]string
	if *imei != "" {
		ids = append(ids, map[string]string{"identifier": *imei, "identifierType": "IMEI"})
	}
	if *serial != "" {
		ids = append(ids, map[string]string{"identifier": *serial, "identifierType": "SERIAL_NUMBER"})
	}
	now := time.Now().UTC().Format(time.RFC3339)
	data := map[string]any{"orderId": *orderID}
	var typ, subject string
	switch *kind {
	case "shipped":
		if len(ids) == 0 {
			return fmt.Errorf("a shipment needs --imei or --serial")
		}
		typ, subject = "smartrent.device.shipped.v1", "smartrent.in.device.shipped"
		data["assetIdentifiers"], data["carrier"], data["shippedAt"] = ids, "Omniva", now
	case "delivered":
		typ, subject = "smartrent.device.delivered.v1", "smartrent.in.device.delivered"
		data["deliveredAt"] = now
		if len(ids) > 0 {
			data["assetIdentifiers"] = ids
		}
	default:
		return fmt.Errorf("--event must be shipped or delivered")
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
	e := event.New()
	e.SetID(uuid.NewString())
	e.SetSource("urn:shop:shipping")
	e.SetType(typ)
	e.SetSubject(*orderID)
	e.SetTime(time.Now())
	e.SetDataSchema("urn:smartrent:schema:" + typ)
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(jetstream.MsgIDHeader, e.ID())
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	fmt.Fprintf(out, "%s %s stored as %s #%d\n", *orderID, *kind, ack.Stream, ack.Sequence)
	return nil
}
