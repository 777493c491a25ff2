package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/streams"
)

// runVersus measures our bridge against the bare stateless bridge
// (tools/barebridge) the same way, rows alternated: each row is a fresh
// nats-server process with file storage, the bridge under test as a
// process, this process as the driver and the fake Inbank (L per call).
// It prints each row's figures and ours as ratios to the bare one's.
func runVersus(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("soak versus", flag.ContinueOnError)
	inFlight := fs.Int("c", 64, "orders in flight (C)")
	latency := fs.Duration("l", 50*time.Millisecond, "fake Inbank latency per call (L)")
	orders := fs.Int("orders", 3000, "orders per row; figures are of the steady state after the first 2·C")
	rounds := fs.Int("rounds", 3, "rounds of (ours, bare); each figure is the median of its rounds")
	syncAlways := fs.Bool("sync-always", false, "nats-server with sync_interval always (the shipped setting; fsync-bound on small machines)")
	cpuProfile := fs.String("cpuprofile", "", "write CPU profiles of both bridges and their nats-servers, and the bridges' allocations, during the first round's orders to PREFIX-{ours,bare}[-nats|-allocs].pb.gz (for `go tool pprof`)")
	var oursEnv envList
	fs.Var(&oursEnv, "ours-env", "KEY=VALUE for our bridge only, repeatable (GOGC=200: what a setting costs or saves against the same floor)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "smartrent-versus-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := build(ctx, dir)
	if err != nil {
		return err
	}
	_, inbankURL, stopFake, err := startFakeInbank(*latency)
	if err != nil {
		return err
	}
	defer stopFake()

	r := versusRun{bins: bins, dir: dir, inbank: inbankURL, inFlight: *inFlight, orders: *orders, latency: *latency, syncAlways: *syncAlways, oursEnv: oursEnv, cpuProfile: *cpuProfile}
	results := map[string][]rowResult{}
	for i := range *rounds {
		for _, row := range []string{"ours", "bare"} {
			res, err := r.row(ctx, row, i)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", row, i+1, err)
			}
			results[row] = append(results[row], res)
		}
	}
	ours, bare := median(results["ours"]), median(results["bare"])
	// Each figure with the range of its rounds: on a shared machine CPU
	// per order moves by several per cent from run to run, so a change
	// smaller than the ranges is not one.
	span := func(which string, get func(rowResult) float64, format string) string {
		lo, hi := get(results[which][0]), get(results[which][0])
		for _, r := range results[which][1:] {
			lo, hi = min(lo, get(r)), max(hi, get(r))
		}
		return fmt.Sprintf(format+"–"+format, lo, hi)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "C=%d, L=%s, %d orders per row (steady state after the first %d), median of %d alternated rounds\tours %s\tbare\tratio\ttarget\tours, rounds\tbare, rounds\n",
		*inFlight, *latency, *orders, 2**inFlight, *rounds, strings.Join(oursEnv, " "))
	rate := func(r rowResult) float64 { return r.rate }
	p99 := func(r rowResult) float64 { return ms(r.p99) }
	bridgeMs := func(r rowResult) float64 { return r.bridgeMs }
	natsMs := func(r rowResult) float64 { return r.natsMs }
	fmt.Fprintf(tw, "orders/s order.placed → session.created\t%.0f\t%.0f\t%.2f\t≥ 0.9\t%s\t%s\n", ours.rate, bare.rate, ours.rate/bare.rate, span("ours", rate, "%.0f"), span("bare", rate, "%.0f"))
	fmt.Fprintf(tw, "steady p50, ms\t%.1f\t%.1f\t\t\t\t\n", ms(ours.p50), ms(bare.p50))
	fmt.Fprintf(tw, "steady p99, ms\t%.1f\t%.1f\t%+.1f ms\t≤ +10 ms\t%s\t%s\n", ms(ours.p99), ms(bare.p99), ms(ours.p99-bare.p99), span("ours", p99, "%.1f"), span("bare", p99, "%.1f"))
	fmt.Fprintf(tw, "CPU per order: bridge, ms\t%.3f\t%.3f\t%.2f\t≤ 1.5\t%s\t%s\n", ours.bridgeMs, bare.bridgeMs, ours.bridgeMs/bare.bridgeMs, span("ours", bridgeMs, "%.3f"), span("bare", bridgeMs, "%.3f"))
	fmt.Fprintf(tw, "CPU per order: nats-server, ms\t%.3f\t%.3f\t%.2f\t≤ 1.5\t%s\t%s\n", ours.natsMs, bare.natsMs, ours.natsMs/bare.natsMs, span("ours", natsMs, "%.3f"), span("bare", natsMs, "%.3f"))
	// Not targets: they tell whether orders/s was bound by the machine's
	// CPU, and then what the other figures cost in orders/s.
	machineMs := func(r rowResult) float64 { return r.machineMs }
	busy := func(r rowResult) float64 { return 100 * r.busy }
	fmt.Fprintf(tw, "CPU per order: whole machine, ms\t%.3f\t%.3f\t%.2f\t\t%s\t%s\n", ours.machineMs, bare.machineMs, ours.machineMs/bare.machineMs, span("ours", machineMs, "%.3f"), span("bare", machineMs, "%.3f"))
	fmt.Fprintf(tw, "machine busy, %% of %d cores\t%.0f\t%.0f\t\t\t%s\t%s\n", numCPU(), 100*ours.busy, 100*bare.busy, span("ours", busy, "%.0f"), span("bare", busy, "%.0f"))
	// Not a target: the driver of much of the bridge's CPU (its garbage
	// collection grows with it) and steadier from run to run than CPU.
	allocKB := func(r rowResult) float64 { return r.allocKB }
	fmt.Fprintf(tw, "allocated per order: bridge, KiB\t%.1f\t%.1f\t%.2f\t\t%s\t%s\n", ours.allocKB, bare.allocKB, ours.allocKB/bare.allocKB, span("ours", allocKB, "%.1f"), span("bare", allocKB, "%.1f"))
	return tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// versusRun is what every row shares.
type versusRun struct {
	bins             *binaries
	dir, inbank      string
	inFlight, orders int
	latency          time.Duration
	syncAlways       bool
	oursEnv          []string
	cpuProfile       string // path prefix of the first round's profiles; "" for none
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// rowResult is one row's steady-state figures.
type rowResult struct {
	rate, bridgeMs, natsMs float64
	// machineMs is the CPU the whole machine spent per order (both
	// processes, this driver, the fake Inbank and anyone else), busy the
	// share of its cores busy meanwhile: when busy is near 1, orders/s is
	// bound by CPU, and ours/bare ≈ bare's machineMs / ours'.
	machineMs, busy float64
	allocKB         float64 // bytes the bridge allocated per order, KiB
	p50, p99        time.Duration
}

// median is the per-figure median of rows.
func median(rows []rowResult) rowResult {
	pick := func(get func(rowResult) float64) float64 {
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return rowResult{
		rate:      pick(func(r rowResult) float64 { return r.rate }),
		bridgeMs:  pick(func(r rowResult) float64 { return r.bridgeMs }),
		natsMs:    pick(func(r rowResult) float64 { return r.natsMs }),
		machineMs: pick(func(r rowResult) float64 { return r.machineMs }),
		busy:      pick(func(r rowResult) float64 { return r.busy }),
		allocKB:   pick(func(r rowResult) float64 { return r.allocKB }),
		p50:       time.Duration(pick(func(r rowResult) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r rowResult) float64 { return float64(r.p99) })),
	}
}

// row runs one bridge ("ours" or "bare") on a fresh nats-server and
// measures orders placed C at a time.
func (v versusRun) row(ctx context.Context, which string, round int) (rowResult, error) {
	dir := filepath.Join(v.dir, fmt.Sprintf("%s-%d", which, round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rowResult{}, err
	}
	port, _ := freePort()
	conf := natsConfDefaultSync(dir, "nats", port)
	if v.syncAlways {
		conf = natsConf(dir, "nats", port, 0, nil)
	}
	profiling := round == 0 && v.cpuProfile != ""
	profPort := 0
	if profiling {
		profPort, _ = freePort()
		conf += fmt.Sprintf("prof_port: %d\n", profPort)
	}
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return rowResult{}, err
	}
	ns := newProc("nats-server", v.bins.path("nats-server"), []string{"-c", confPath}, nil, dir)
	if err := ns.start(); err != nil {
		return rowResult{}, err
	}
	defer ns.stop()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	if err := waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
		return rowResult{}, err
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return rowResult{}, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		return rowResult{}, err
	}
	readyPort, _ := freePort()
	env := benchBridgeEnv(natsURL, v.inbank, v.inFlight)
	bin, ready := v.bins.path("bridge"), fmt.Sprintf("http://127.0.0.1:%d/readyz", readyPort)
	if which == "bare" {
		bin = v.bins.path("barebridge")
		env = append(env, fmt.Sprintf("READY_ADDR=127.0.0.1:%d", readyPort))
	} else {
		env = append(env, fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", readyPort))
		env = append(env, v.oursEnv...)
		if profiling {
			env = append(env, "PPROF=true")
		}
	}
	bridge := newProc(which, bin, nil, env, dir)
	if err := bridge.start(); err != nil {
		return rowResult{}, err
	}
	defer bridge.stop()
	if err := waitHTTP(ctx, ready, 30*time.Second); err != nil {
		return rowResult{}, err
	}
	driver, err := newOrderDriver(nc, js, fmt.Sprintf("V%s%d", which, round))
	if err != nil {
		return rowResult{}, err
	}
	defer driver.close()
	if _, err := driver.place(ctx); err != nil { // warm: conditions cached, connections open
		return rowResult{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// CPU of the bridge and its nats-server, and the bridge's allocations
	// (a delta profile: what the same 3 seconds allocated). 3 seconds:
	// long enough to cover most of the steady state at any C, short
	// enough to end before the orders do on this machine.
	profiles := map[string]string{}
	if profiling {
		profiles[fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=3", readyPort)] = which
		profiles[fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=3", profPort)] = which + "-nats"
		profiles[fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/allocs?seconds=3", readyPort)] = which + "-allocs"
	}
	profiled := make(chan error, len(profiles))
	for url, name := range profiles {
		go func() { profiled <- fetchProfile(ctx, url, v.cpuProfile+"-"+name+".pb.gz") }()
	}
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", readyPort)
	a0, aerr0 := allocatedBytes(ctx, metrics)
	b0, n0 := cpuSeconds(bridge.pid()), cpuSeconds(ns.pid())
	m0, all0 := machineSeconds()
	done, err := driver.countedLoop(pctx, v.inFlight, v.orders)
	b1, n1 := cpuSeconds(bridge.pid()), cpuSeconds(ns.pid())
	m1, all1 := machineSeconds()
	a1, aerr1 := allocatedBytes(ctx, metrics)
	if aerr := errors.Join(aerr0, aerr1); aerr != nil {
		return rowResult{}, fmt.Errorf("%s bridge's allocations: %w", which, aerr)
	}
	var perr error
	for range profiles {
		perr = errors.Join(perr, <-profiled)
	}
	if perr != nil {
		return rowResult{}, fmt.Errorf("profile: %w", perr)
	}
	if err != nil {
		return rowResult{}, fmt.Errorf("placing %d orders: %w", v.orders, err)
	}
	skip := min(2*v.inFlight, len(done)-1)
	lat := make([]time.Duration, 0, len(done)-skip-1)
	for _, c := range done[skip+1:] {
		lat = append(lat, c.took)
	}
	slices.Sort(lat)
	elapsed := done[len(done)-1].at.Sub(done[skip].at)
	n := float64(len(done))
	return rowResult{
		rate:      float64(len(lat)) / elapsed.Seconds(),
		p50:       lat[len(lat)/2],
		p99:       lat[min(len(lat)-1, int(0.99*float64(len(lat))))],
		bridgeMs:  1000 * (b1 - b0) / n,
		natsMs:    1000 * (n1 - n0) / n,
		machineMs: 1000 * (m1 - m0) / n,
		busy:      (m1 - m0) / max(all1-all0, 1e-9),
		allocKB:   (a1 - a0) / n / 1024,
	}, nil
}

// natsConfDefaultSync is a single server with file storage and
// nats-server's default sync interval.
func natsConfDefaultSync(dir, name string, port int) string {
	return fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n}\n", name, port, filepath.Join(dir, name))
}

// fetchProfile saves the profile served at url to path.
func fetchProfile(ctx context.Context, url, path string) error {
	b, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// allocatedBytes reads go_memstats_alloc_bytes_total (bytes allocated
// since the process started) from a Prometheus endpoint.
func allocatedBytes(ctx context.Context, url string) (float64, error) {
	body, err := httpGet(ctx, url)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_memstats_alloc_bytes_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no go_memstats_alloc_bytes_total", url)
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
