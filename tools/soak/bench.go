package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// runBench measures the bridge as a process: orders per second from
// order.placed to session.created against the Little's-law bound C/(k·L),
// the latency it adds above Inbank's, its resident memory with many
// orders in flight, and its start-up time.
func runBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("soak bench", flag.ContinueOnError)
	inFlight := fs.Int("c", 64, "orders in flight (C)")
	latency := fs.Duration("l", 50*time.Millisecond, "fake Inbank latency per call (L)")
	orders := fs.Int("orders", 2000, "orders to place; throughput and latency are of the steady state after the first 2·C (0: measure for -measure after a 2 s warm-up)")
	measure := fs.Duration("measure", 10*time.Second, "with -orders 0: measuring time after a warm-up")
	memOrders := fs.Int("mem-orders", 10000, "orders in flight for the memory figure (0 skips it)")
	profile := fs.String("cpuprofile", "", "write the bridge's CPU profile during the measurement to this file")
	syncAlways := fs.Bool("sync-always", false, "run NATS with sync_interval always (the shipped setting; fsync-bound on small machines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "smartrent-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := build(ctx, dir)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: true, StoreDir: filepath.Join(dir, "js"), SyncAlways: *syncAlways})
	if err != nil {
		return err
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats did not start")
	}
	fake, inbankURL, stopFake, err := startFakeInbank(*latency)
	if err != nil {
		return err
	}
	defer stopFake()

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		return err
	}
	opsPort, _ := freePort()
	bridge := newProc("bridge", bins.path("bridge"), nil, append(benchBridgeEnv(ns.ClientURL(), inbankURL, *inFlight),
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", opsPort), "PPROF=true"), dir)
	startAt := time.Now()
	if err := bridge.start(); err != nil {
		return err
	}
	defer bridge.stop()
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", opsPort), 30*time.Second); err != nil {
		return err
	}
	startup := time.Since(startAt)

	// Orders in flight: each worker places an order and waits for its
	// session.created before placing the next.
	driver, err := newOrderDriver(nc, js, "B")
	if err != nil {
		return err
	}
	defer driver.close()
	place := driver.place
	// Warm up (conditions cached, connections open), then measure.
	if _, err := place(ctx); err != nil {
		return err
	}
	var lat []time.Duration
	var elapsed, coldP99 time.Duration
	// CPU per order, of the bridge and of the rest (this process: NATS, the
	// fake Inbank and the driver), says how many cores a rate needs.
	var cpu cpuPerOrder
	if *orders > 0 {
		// The method: a fixed number of orders; the steady state
		// starts once the first 2·C have completed.
		pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cpu.start(bridge)
		done, err := driver.countedLoop(pctx, *inFlight, *orders)
		cpu.end(bridge)
		cpu.per(len(done))
		cancel()
		if err != nil {
			return fmt.Errorf("placing %d orders: %w", *orders, err)
		}
		skip := min(2**inFlight, len(done)-1)
		for _, c := range done[skip+1:] {
			lat = append(lat, c.took)
		}
		elapsed = done[len(done)-1].at.Sub(done[skip].at)
		all := make([]time.Duration, len(done))
		for i, c := range done {
			all[i] = c.took
		}
		slices.Sort(all)
		coldP99 = all[min(len(all)-1, int(0.99*float64(len(all))))]
	} else {
		lat, elapsed = driver.closedLoop(ctx, *inFlight, 2*time.Second, *measure, func() {
			cpu.start(bridge)
			if *profile == "" {
				return
			}
			go func() {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", opsPort, int(measure.Seconds())-1))
				if err != nil {
					return
				}
				defer resp.Body.Close()
				f, err := os.Create(*profile)
				if err != nil {
					return
				}
				defer f.Close()
				io.Copy(f, resp.Body)
			}()
		}, func() { cpu.end(bridge) }) // before the orders in flight drain
		cpu.per(len(lat))
	}
	rate := float64(len(lat)) / elapsed.Seconds()
	const k = 2 // calculation and session creation; conditions are cached
	bound := float64(*inFlight) / (k * latency.Seconds())
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))] - k**latency
	}

	handlerMean := scrapeMean(fmt.Sprintf("http://127.0.0.1:%d/metrics", opsPort), "smartrent_handler_duration_seconds", `consumer="bridge-orders"`)
	inbankMean := scrapeMean(fmt.Sprintf("http://127.0.0.1:%d/metrics", opsPort), "smartrent_inbank_request_duration_seconds", `operation="create_session"`)

	var rss string
	if *memOrders > 0 {
		// Many orders waiting for their customers: place them as fast as
		// the bridge takes them, then read its resident memory.
		fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		var pw sync.WaitGroup
		var placed atomic.Int64
		for range 64 {
			pw.Go(func() {
				for placed.Add(1) <= int64(*memOrders) && pctx.Err() == nil {
					place(pctx)
				}
			})
		}
		pw.Wait()
		cancel()
		rss = readRSS(bridge)
	}

	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\tbaseline\tratio\ttarget")
	window := fmt.Sprintf("%s after 2 s warm-up", measure.String())
	if *orders > 0 {
		window = fmt.Sprintf("%d orders, steady state after the first %d", *orders, 2**inFlight)
	}
	fmt.Fprintf(tw, "orders/s order.placed → session.created (C=%d, L=%s, k=%d; %s)\t%.0f\tC/(k·L) = %.0f\t%.2f\t≥ 0.95\n", *inFlight, *latency, k, window, rate, bound, rate/bound)
	fmt.Fprintf(tw, "latency above Inbank's (p50)\t%s\t%d × L\t\t\n", pct(0.50).Round(100*time.Microsecond), k)
	fmt.Fprintf(tw, "latency above Inbank's (p99)\t%s\t%d × L\t\t≤ 5ms\n", pct(0.99).Round(100*time.Microsecond), k)
	if coldP99 > 0 {
		fmt.Fprintf(tw, "latency p99 counting the cold start (all %d orders)\t%s\t\t\t\n", *orders, coldP99.Round(100*time.Microsecond))
	}
	// The calculation and the session creation run at once, so the
	// customer waits one round trip: the bridge's own share is above L.
	fmt.Fprintf(tw, "latency above one Inbank round trip (p50, p99)\t%s, %s\tL\t\t\n", (pct(0.50) + *latency).Round(100*time.Microsecond), (pct(0.99) + *latency).Round(100*time.Microsecond))
	fmt.Fprintf(tw, "  of which: order.placed handler, mean\t%s\t\t\t\n", handlerMean.Round(100*time.Microsecond))
	fmt.Fprintf(tw, "  of which: one create_session call as the bridge sees it, mean\t%s\tL\t\t\n", inbankMean.Round(100*time.Microsecond))
	fmt.Fprintf(tw, "CPU per order: bridge; NATS, fake Inbank and driver\t%.2f ms; %.2f ms\t\t\t\n", cpu.bridgeMs, cpu.restMs)
	fmt.Fprintf(tw, "cores the bound C/(k·L) needs at that CPU per order\t%.1f\t%d cores here\t\t\n", bound*(cpu.bridgeMs+cpu.restMs)/1000, numCPU())
	if rss != "" {
		fmt.Fprintf(tw, "bridge RSS with %d orders in flight\t%s\t\t\t≤ 64 MiB\n", *memOrders, rss)
	}
	fmt.Fprintf(tw, "bridge start-up to ready\t%s\t\t\t≤ 1s\n", startup.Round(time.Millisecond))
	return tw.Flush()
}

// cpuPerOrder is the CPU the bridge and this process spent between start
// and end, per order completed in that window.
type cpuPerOrder struct {
	bridge0, rest0   float64
	bridgeMs, restMs float64 // after end: the window's CPU, until per divides it
}

func (c *cpuPerOrder) start(bridge *proc) {
	c.bridge0, c.rest0 = cpuSeconds(bridge.pid()), cpuSeconds(os.Getpid())
}

func (c *cpuPerOrder) end(bridge *proc) {
	c.bridgeMs = 1000 * (cpuSeconds(bridge.pid()) - c.bridge0)
	c.restMs = 1000 * (cpuSeconds(os.Getpid()) - c.rest0)
}

func (c *cpuPerOrder) per(orders int) {
	if orders == 0 {
		c.bridgeMs, c.restMs = 0, 0
		return
	}
	c.bridgeMs /= float64(orders)
	c.restMs /= float64(orders)
}

// readRSS reads VmRSS of a child process from /proc.
func readRSS(p *proc) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if kb, err := strconv.Atoi(f[0]); err == nil {
				return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
			}
		}
	}
	return "unknown"
}

// scrapeMean reads a histogram's mean (sum / count) for the series whose
// labels contain match from a Prometheus text endpoint.
func scrapeMean(url, name, match string) time.Duration {
	b, err := httpGet(context.Background(), url)
	if err != nil {
		return 0
	}
	var sum, count float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(line, name+"_sum"):
			sum = v
		case strings.HasPrefix(line, name+"_count"):
			count = v
		}
	}
	if count == 0 {
		return 0
	}
	return time.Duration(sum / count * float64(time.Second))
}
