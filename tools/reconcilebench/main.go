// Command reconcilebench measures what one reconciliation pass costs with
// 1,000 open orders alone, then with the same 1,000 among 200,000
// finished ones (as a year of traffic leaves them), against a real
// nats-server, and prints the ratio of both figures (time and KV
// operations) measured in the same run:
//
//	go run ./tools/reconcilebench
//	reconcile-scaling ratio 1.02 (time 1.02, kv-ops 1.00; 1000 open: 41ms 2001 ops alone, 42ms 2001 ops among 200000 finished)
//
// A pass lists the open-order index and reads each open order; the
// finished orders were retired from the index, so they cost nothing. The
// target is ≤ 1.2.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

func main() {
	open := flag.Int("open", 1000, "open orders")
	finished := flag.Int("finished", 200000, "finished orders added for the second measurement")
	passes := flag.Int("passes", 7, "passes measured each time (the median is kept)")
	earlier := flag.Bool("earlier", false, "also time the earlier version's pass, which read every stored order")
	flag.Parse()
	if err := run(context.Background(), *open, *finished, *passes, *earlier); err != nil {
		fmt.Fprintln(os.Stderr, "reconcilebench:", err)
		os.Exit(1)
	}
}

// counting counts the KV operations a pass makes.
type counting struct {
	handlers.Store
	handlers.OpenOrders
	ops atomic.Int64
}

func (c *counting) LoadFresh(ctx context.Context, key string) (order.Order, uint64, error) {
	c.ops.Add(1)
	return c.Store.LoadFresh(ctx, key)
}

func (c *counting) Save(ctx context.Context, key string, o order.Order, rev uint64) (uint64, error) {
	c.ops.Add(1)
	return c.Store.Save(ctx, key, o, rev)
}

func (c *counting) Keys(ctx context.Context) ([]string, error) {
	keys, err := c.OpenOrders.Keys(ctx)
	c.ops.Add(int64(len(keys)) + 1) // the listing delivers one message per key
	return keys, err
}

func run(ctx context.Context, nOpen, nFinished, passes int, earlier bool) error {
	dir, err := os.MkdirTemp("", "reconcilebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: true, StoreDir: filepath.Join(dir, "js")})
	if err != nil {
		return err
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology())
	if err != nil {
		return err
	}
	index, err := orderstore.OpenIndexOf(ctx, js, "bench")
	if err != nil {
		return err
	}
	store := orderstore.NewStateStore[order.Order](kv)
	c := &counting{Store: store, OpenOrders: index}
	tokens, _ := callbacktoken.New([]string{"bench-secret-0123456789abcdef"})
	wf, err := handlers.New(handlers.Config{
		Inbank: nopInbank{}, Store: c, Open: c, Publisher: streams.NewPublisher(js, events.NewCodec(schemas.MustLoad())),
		Codec: events.NewCodec(schemas.MustLoad()), Tokens: tokens, CallbackBaseURL: "http://ingress.bench",
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range nOpen {
		key := fmt.Sprintf("OPEN-%06d", i)
		if err := index.Add(ctx, key, nil); err != nil {
			return err
		}
		o := order.Order{OrderID: key, State: order.StatePending, SessionUUID: "s", CreatedAt: now, UpdatedAt: now}
		if _, err := store.Create(ctx, key, o); err != nil {
			return err
		}
	}
	// Passes with the orders not yet due: what is measured is what every
	// pass pays for knowing which orders are due, not Inbank's answers.
	measure := func() (time.Duration, int64, error) {
		var times []time.Duration
		var ops int64
		for range passes {
			c.ops.Store(0)
			start := time.Now()
			if _, err := wf.Reconcile(ctx, c, time.Hour); err != nil {
				return 0, 0, err
			}
			times = append(times, time.Since(start))
			ops = c.ops.Load()
		}
		slices.Sort(times)
		return times[len(times)/2], ops, nil
	}
	aloneT, aloneOps, err := measure()
	if err != nil {
		return err
	}

	// A year of finished orders: written as the bridge leaves them
	// (retired from the index), fast with asynchronous publishes.
	done := order.Order{State: order.StateActivated, SessionStatus: "completed", CreatedAt: now, UpdatedAt: now}
	for i := range nFinished {
		done.OrderID = fmt.Sprintf("DONE-%07d", i)
		b, _ := json.Marshal(done)
		if _, err := js.PublishAsync("$KV."+streams.BucketOrders+"."+done.OrderID, b); err != nil {
			return err
		}
		if i%5000 == 4999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				return fmt.Errorf("publishing finished orders timed out")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return fmt.Errorf("publishing finished orders timed out")
	}
	st, _ := kv.Status(ctx)
	if earlier {
		start, n := time.Now(), 0
		for _, err := range store.All(ctx) {
			if err != nil {
				return err
			}
			n++
		}
		fmt.Printf("earlier version's pass (list and read every order): %v, %d reads\n", time.Since(start).Round(time.Millisecond), n)
	}
	withT, withOps, err := measure()
	if err != nil {
		return err
	}
	tr, or := float64(withT)/float64(aloneT), float64(withOps)/float64(aloneOps)
	fmt.Printf("reconcile-scaling ratio %.2f (time %.2f, kv-ops %.2f; %d open: %v %d ops alone, %v %d ops among %d finished; bucket holds %d values; target <= 1.2)\n",
		max(tr, or), tr, or, nOpen, aloneT.Round(time.Millisecond), aloneOps, withT.Round(time.Millisecond), withOps, nFinished, st.Values())
	return nil
}

// nopInbank is never called: no order is due in these passes.
type nopInbank struct{ inbank.API }
