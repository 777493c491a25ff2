// Command analytics is what an analytics system does with the Smart Rent
// bridge: a durable consumer of smartrent.out.contract.activated that keeps
// a running count and the monthly revenue of activated rentals. Being
// durable, it resumes where it stopped. Copy it; it uses only nats.go and
// the CloudEvents SDK.
//
//	go run ./examples/analytics
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

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "analytics:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("analytics", flag.ContinueOnError)
	url := fs.String("nats-url", nats.DefaultURL, "NATS server")
	// Replies (JetStream acks, consumer fetches) come on subjects under
	// this prefix: with deploy/nats/nats-server-secure.conf the analytics user
	// may subscribe there only, never to the shared _INBOX.> where every
	// other user's replies would be.
	inbox := fs.String("nats-inbox-prefix", "_INBOX_analytics", "prefix of the subjects replies come on")
	durable := fs.String("durable", "analytics-activations", "durable consumer name")
	limit := fs.Int("max", 0, "stop after this many activations (0: run until interrupted)")
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
	// With nats-server-secure.conf the durable is created by admin
	// (deploy/nats/consumers-out) and this user may only read it; on a
	// server without users it is created here.
	cons, err := js.Consumer(ctx, "SMARTRENT_OUT", *durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateOrUpdateConsumer(ctx, "SMARTRENT_OUT", jetstream.ConsumerConfig{
			Durable: *durable, FilterSubject: "smartrent.out.contract.activated", AckPolicy: jetstream.AckExplicitPolicy,
		})
	}
	if err != nil {
		return err
	}
	count, revenue := 0, 0.0
	for *limit == 0 || count < *limit {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return err
		}
		var e event.Event
		var data struct {
			OrderID             string  `json:"orderId"`
			ActivatedVia        string  `json:"activatedVia"`
			GrossMonthlyPayment float64 `json:"grossMonthlyPayment"`
		}
		if err := json.Unmarshal(m.Data(), &e); err != nil || e.DataAs(&data) != nil {
			m.Term() // not a contract.activated event: never worth retrying
			continue
		}
		count++
		revenue += data.GrossMonthlyPayment
		fmt.Fprintf(out, "%s activated via %s: %d rentals, %.2f EUR a month\n", data.OrderID, data.ActivatedVia, count, revenue)
		if err := m.Ack(); err != nil {
			return err
		}
	}
	return nil
}
