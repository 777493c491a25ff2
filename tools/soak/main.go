// Command soak runs the real binaries — nats-server, inbank-sandbox,
// webhook-ingress and one or more bridges — as processes on loopback,
// drives orders through the whole flow while it breaks things, and checks
// that nothing was lost and no Inbank side effect happened twice.
//
//	go run ./tools/soak                 # every scenario, 200 orders each
//	go run ./tools/soak -short          # a quick run (also part of make test)
//	go run ./tools/soak -scenarios kill-bridge,nats-restart -orders 50
//	go run ./tools/soak bench           # the bridge's throughput, latency, memory, start-up
//
// Every loop is bounded in count and time, traffic stays on 127.0.0.1, and
// every process started is stopped at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// scenario breaks the running stack in one way while orders flow.
type scenario struct {
	name    string
	what    string
	options stackOptions
	// chaos runs until ctx ends; it may kill and restart processes.
	chaos func(ctx context.Context, s *stack, cfg config) error
}

type config struct {
	orders int
	kills  int
	short  bool
}

func scenarios() []scenario {
	pause := func(ctx context.Context, min, max time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min + rand.N(max-min)):
			return true
		}
	}
	return []scenario{
		{name: "kill-bridge", what: "kill -9 the bridge at random moments, restart it", options: stackOptions{bridges: 1},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				for range cfg.kills {
					if !pause(ctx, 300*time.Millisecond, 1500*time.Millisecond) {
						return nil
					}
					if err := s.restartBridge(0); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "three-bridges", what: "three bridges, one killed repeatedly", options: stackOptions{bridges: 3},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				for range cfg.kills {
					if !pause(ctx, 300*time.Millisecond, 1500*time.Millisecond) {
						return nil
					}
					if err := s.restartBridge(rand.N(len(s.bridges))); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "nats-restart", what: "the NATS server killed and restarted mid-run", options: stackOptions{bridges: 2},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				for range 2 {
					if !pause(ctx, time.Second, 3*time.Second) {
						return nil
					}
					s.nats[0].kill()
					time.Sleep(time.Second)
					if err := s.nats[0].start(); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "cluster-leader", what: "three-node cluster, R3; the stream leader stopped mid-run", options: stackOptions{bridges: 2, cluster: true},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				if !pause(ctx, time.Second, 3*time.Second) {
					return nil
				}
				info, err := s.js.Stream(ctx, streams.StreamIn)
				if err != nil {
					return err
				}
				leader := info.CachedInfo().Cluster.Leader
				for _, n := range s.nats {
					if n.name == leader {
						n.kill()
						time.Sleep(3 * time.Second)
						return n.start()
					}
				}
				return fmt.Errorf("no process for stream leader %q", leader)
			}},
		{name: "inbank-faults", what: "the sandbox answers 503/429/timeouts at 30 % for a while", options: stackOptions{bridges: 2},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				faults := map[string]string{
					"*":           `{"status":503,"rate":0.3,"retryAfterSeconds":1}`,
					"calculate":   `{"status":429,"rate":0.3,"retryAfterSeconds":1}`,
					"get_session": `{"timeout":true,"rate":0.3}`,
				}
				for op, f := range faults {
					if resp, err := s.sandboxCall(ctx, http.MethodPut, "/sandbox/faults/"+op, f); err != nil {
						return err
					} else {
						resp.Body.Close()
					}
				}
				pause(ctx, 5*time.Second, 6*time.Second)
				resp, err := s.sandboxCall(context.Background(), http.MethodDelete, "/sandbox/faults", "")
				if err == nil {
					resp.Body.Close()
				}
				return err
			}},
		{name: "callbacks-dropped", what: "every callback dropped", options: stackOptions{bridges: 1, sandboxArgs: []string{"--callback-drop-rate", "1"}}},
		{name: "callbacks-chaotic", what: "every callback duplicated twice and reordered", options: stackOptions{bridges: 2, sandboxArgs: []string{"--callback-duplicates", "2", "--callback-reorder", "--callback-delay", "300ms"}}},
		{name: "kill-ingress", what: "the ingress killed while callbacks are in flight", options: stackOptions{bridges: 1},
			chaos: func(ctx context.Context, s *stack, cfg config) error {
				for range 3 {
					if !pause(ctx, 500*time.Millisecond, 2*time.Second) {
						return nil
					}
					s.ingress.kill()
					time.Sleep(500 * time.Millisecond)
					if err := s.ingress.start(); err != nil {
						return err
					}
				}
				return nil
			}},
	}
}

// result is one scenario's line in the table.
type result struct {
	scenario, what                                    string
	orders, completed, lost, duplicates, orphans, dlq int
	kills                                             string
	took                                              time.Duration
	problems                                          []string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "versus" {
		return runVersus(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "scale" {
		return runScale(ctx, args[1:], out)
	}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	orders := fs.Int("orders", 200, "orders per scenario")
	kills := fs.Int("kills", 25, "bridge kills per kill scenario")
	only := fs.String("scenarios", "", "comma-separated scenario names (default: all)")
	short := fs.Bool("short", false, "20 orders and 5 kills per scenario, three scenarios")
	keep := fs.Bool("keep", false, "keep the logs and stores")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config{orders: *orders, kills: *kills, short: *short}
	var chosen []scenario
	for _, sc := range scenarios() {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), sc.name) {
			continue
		}
		if *short && *only == "" && !slices.Contains([]string{"kill-bridge", "nats-restart", "kill-ingress"}, sc.name) {
			continue
		}
		chosen = append(chosen, sc)
	}
	if *short {
		cfg.orders, cfg.kills = min(cfg.orders, 20), min(cfg.kills, 5)
	}
	if len(chosen) == 0 {
		return fmt.Errorf("no scenario named %q", *only)
	}
	dir, err := os.MkdirTemp("", "smartrent-soak-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(out, "logs and stores in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bins, err := build(ctx, dir)
	if err != nil {
		return err
	}
	var results []result
	for _, sc := range chosen {
		fmt.Fprintf(out, "running %s: %s (%d orders)\n", sc.name, sc.what, cfg.orders)
		scDir, _ := os.MkdirTemp(dir, sc.name+"-")
		r, err := runScenario(ctx, bins, scDir, sc, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", sc.name, err, scDir)
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nscenario\torders\tcompleted\tlost\tduplicate side effects\torphan sessions\tdead letters\tdisruptions\ttook")
	failed := false
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.scenario, r.orders, r.completed, r.lost, r.duplicates, r.orphans, r.dlq, r.kills, r.took.Round(100*time.Millisecond))
		if r.completed != r.orders || r.lost != 0 || r.duplicates != 0 || r.dlq != 0 {
			failed = true
		}
	}
	tw.Flush()
	for _, r := range results {
		for _, p := range r.problems {
			fmt.Fprintf(out, "%s: %s\n", r.scenario, p)
		}
	}
	if failed {
		return errors.New("some orders were lost, incomplete or had a side effect twice")
	}
	fmt.Fprintln(out, "\nevery order completed; nothing lost; no side effect twice (orphan sessions are created, never published, and expire at Inbank)")
	return nil
}

func runScenario(ctx context.Context, bins *binaries, dir string, sc scenario, cfg config) (result, error) {
	start := time.Now()
	r := result{scenario: sc.name, what: sc.what, orders: cfg.orders, kills: "-"}
	s, err := startStack(ctx, bins, dir, sc.options)
	if err != nil {
		return r, err
	}
	defer s.stop()
	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan error, 1)
	go func() {
		if sc.chaos == nil {
			chaosDone <- nil
			return
		}
		chaosDone <- sc.chaos(chaosCtx, s, cfg)
	}()
	timeout := 3*time.Minute + time.Duration(cfg.orders)*300*time.Millisecond
	driveCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	spread := max(5*time.Second, time.Duration(cfg.kills)*time.Second)
	driveErr := drive(driveCtx, s, cfg.orders, sc.name, spread)
	if err := <-chaosDone; err != nil {
		stopChaos()
		return r, fmt.Errorf("chaos: %w", err)
	}
	stopChaos()
	if sc.chaos != nil {
		r.kills = "yes"
		if strings.Contains(sc.name, "bridge") {
			r.kills = fmt.Sprintf("%d kills", cfg.kills)
		}
	}
	if driveErr != nil {
		r.problems = append(r.problems, "drive: "+driveErr.Error())
	}
	if err := check(ctx, s, cfg.orders, sc.name, &r); err != nil {
		return r, err
	}
	r.took = time.Since(start)
	return r, nil
}

func orderID(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// drive plays the shop and the customers for n orders: place, sign, ship,
// deliver, and waits until each is activated or ctx ends.
func drive(ctx context.Context, s *stack, n int, prefix string, spread time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	// Orders start spread over the chaos period, so the disruptions meet
	// orders at every step.
	gap := spread / time.Duration(max(n, 1))
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(gap):
			}
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := playOrder(ctx, s, orderID(prefix, i)); err != nil {
				errs <- fmt.Errorf("%s: %w", orderID(prefix, i), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 3 {
		return fmt.Errorf("%d orders failed to finish, e.g. %w", len(all), errors.Join(all[:3]...))
	}
	return errors.Join(all...)
}

// publish stores an input event, retrying while NATS is away (the same
// event id, so it is stored once).
func publish(ctx context.Context, s *stack, typ, orderID string, data any) error {
	body, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": uuid.NewString(), "source": "urn:soak", "type": typ, "subject": orderID,
		"time": time.Now().UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json", "data": data,
	})
	var id struct{ ID string }
	json.Unmarshal(body, &id)
	subject, _ := events.SubjectOf(typ)
	for {
		msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}, jetstream.MsgIDHeader: {id.ID}}}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := s.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w", typ, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitFor polls the sandbox or the stream for a condition, bounded by ctx.
func waitFor(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// lastOut returns the data of the order's latest event of typ seen in
// SMARTRENT_OUT, or nil.
func (s *stack) lastOut(orderID, typ string) map[string]any {
	all := s.out.Of(orderID, typ)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// waitOut waits until cond holds for the order's events of typ.
func (s *stack) waitOut(ctx context.Context, orderID, typ string, cond func(map[string]any) bool) bool {
	return s.out.WaitUntil(time.Until(deadline(ctx)), func() bool {
		all := s.out.OfLocked(orderID, typ)
		return len(all) > 0 && cond(all[len(all)-1])
	})
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Hour)
}

func playOrder(ctx context.Context, s *stack, id string) error {
	data := map[string]any{
		"orderId": id, "period": 24, "locale": "et-EE", "description": "soak order",
		"returnUrl": "https://shop.example/r", "cancelUrl": "https://shop.example/c",
		"heroDevice": map[string]any{"identifierType": "EAN", "identifier": "0195949821899", "modelId": "apple-iphone-16-128gb", "modelName": "iPhone", "netPrice": 300 + rand.N(600)},
	}
	if err := publish(ctx, s, events.TypeOrderPlaced, id, data); err != nil {
		return err
	}
	exists := func(map[string]any) bool { return true }
	if !s.waitOut(ctx, id, events.TypeSessionCreated, exists) {
		return errors.New("no session.created")
	}
	session, _ := s.lastOut(id, events.TypeSessionCreated)["sessionUuid"].(string)
	if err := waitFor(ctx, 200*time.Millisecond, func() (bool, error) {
		resp, err := s.sandboxCall(ctx, http.MethodPost, "/sandbox/sessions/"+session+"/sign", "")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200 || resp.StatusCode == 409, nil
	}); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if !s.waitOut(ctx, id, events.TypeSessionStatusChange, func(d map[string]any) bool { return d["status"] == "granted" || d["status"] == "completed" }) {
		return errors.New("never granted")
	}
	ids := []map[string]string{{"identifier": "356938035643809", "identifierType": "IMEI"}}
	if err := publish(ctx, s, events.TypeDeviceShipped, id, map[string]any{"orderId": id, "assetIdentifiers": ids}); err != nil {
		return err
	}
	if err := publish(ctx, s, events.TypeDeviceDelivered, id, map[string]any{"orderId": id}); err != nil {
		return err
	}
	if !s.waitOut(ctx, id, events.TypeContractActivated, exists) {
		return errors.New("never activated")
	}
	return nil
}

// check counts, from the streams and the sandbox's counters, what became
// of every order.
func check(ctx context.Context, s *stack, n int, prefix string, r *result) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, msgs, err := streams.StreamMessages(ctx, s.js, streams.StreamOut)
	if err != nil {
		return fmt.Errorf("read SMARTRENT_OUT: %w", err)
	}
	count := map[string]map[string]int{}
	activatedContract := map[string]string{}
	for _, m := range msgs {
		var e struct {
			Type    string         `json:"type"`
			Subject string         `json:"subject"`
			Data    map[string]any `json:"data"`
		}
		if json.Unmarshal(m.Data, &e) != nil {
			r.problems = append(r.problems, fmt.Sprintf("undecodable event at %s #%d", m.Subject, m.Sequence))
			continue
		}
		if count[e.Subject] == nil {
			count[e.Subject] = map[string]int{}
		}
		count[e.Subject][e.Type]++
		if e.Type == events.TypeContractActivated {
			activatedContract[e.Subject], _ = e.Data["contractUuid"].(string)
		}
	}
	_, dlq, err := streams.StreamMessages(ctx, s.js, streams.StreamDLQ)
	if err != nil {
		return fmt.Errorf("read SMARTRENT_DLQ: %w", err)
	}
	r.dlq = len(dlq)
	for _, m := range dlq {
		if m.Header.Get(streams.HeaderDLQReason) == "" {
			r.problems = append(r.problems, "a dead letter without a reason")
		}
		r.problems = append(r.problems, "dead letter: "+m.Header.Get(streams.HeaderDLQReason))
	}
	c, err := s.counters(ctx)
	if err != nil {
		return fmt.Errorf("sandbox counters: %w", err)
	}
	for i := range n {
		id := orderID(prefix, i)
		got := count[id]
		complete := got[events.TypeSessionCreated] == 1 && got[events.TypeContractActivated] == 1 &&
			got[events.TypeIdentifiersAssigned] >= 1 && got[events.TypeSessionStatusChange] >= 1
		if complete {
			r.completed++
		} else {
			r.lost++
			r.problems = append(r.problems, fmt.Sprintf("%s: events %v", id, got))
		}
		dup := got[events.TypeSessionCreated] > 1 || got[events.TypeContractActivated] > 1
		if k := activatedContract[id]; k != "" && c.Activations[k] > 1 {
			dup = true
			r.problems = append(r.problems, fmt.Sprintf("%s: %d activation calls", id, c.Activations[k]))
		}
		if dup {
			r.duplicates++
		}
		if c.SessionsCreated[id] > 1 {
			r.orphans += c.SessionsCreated[id] - 1
		}
	}
	return nil
}
