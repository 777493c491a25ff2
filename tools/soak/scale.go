package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runScale compares 3 bridges with 1 on a three-node R3 cluster, in one
// run: orders in flight C per bridge (Little's law bounds throughput at
// C·bridges/(k·L), so a fixed total C would cap both runs alike), fake
// Inbank latency L, k = 2 calls before session.created. It prints each
// run's rate and every process's CPU (from /proc), then
// "bridges-3-vs-1 ratio X".
//
//	go run ./tools/soak scale
func runScale(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("soak scale", flag.ContinueOnError)
	perBridge := fs.Int("c", 64, "orders in flight per bridge (C)")
	latency := fs.Duration("l", 50*time.Millisecond, "fake Inbank latency per call (L)")
	measure := fs.Duration("measure", 10*time.Second, "measuring time after a warm-up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "smartrent-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := build(ctx, dir)
	if err != nil {
		return err
	}
	rates := map[int]float64{}
	for _, n := range []int{1, 3} {
		runDir := filepath.Join(dir, fmt.Sprintf("bridges-%d", n))
		os.MkdirAll(runDir, 0o755)
		rate, cpu, err := scaleRun(ctx, bins, runDir, n, *perBridge*n, *latency, *measure)
		if err != nil {
			return fmt.Errorf("%d bridges: %w", n, err)
		}
		rates[n] = rate
		bound := float64(*perBridge*n) / (2 * latency.Seconds())
		fmt.Fprintf(out, "%d bridge(s), C=%d, L=%v: %.0f orders/s (%.2f of C/(k·L) = %.0f); CPU of %v: %s\n",
			n, *perBridge*n, *latency, rate, rate/bound, bound, *measure, cpu)
	}
	fmt.Fprintf(out, "bridges-3-vs-1 ratio %.2f (target >= 2.5; this machine has %d cores shared by the cluster, the bridges, the fake Inbank and the load driver)\n",
		rates[3]/rates[1], numCPU())
	return nil
}

func scaleRun(ctx context.Context, bins *binaries, dir string, bridges, inFlight int, latency, measure time.Duration) (float64, string, error) {
	s, err := startStack(ctx, bins, dir, stackOptions{
		bridges: bridges, cluster: true,
		sandboxArgs: []string{"--latency", latency.String()},
		bridgeEnv:   []string{"LOG_LEVEL=warn", "RECONCILE_INTERVAL=10m", fmt.Sprintf("CONCURRENCY=%d", max(inFlight, 64)), "INBANK_TIMEOUT=5s", "ACK_WAIT=30s"},
	})
	if err != nil {
		return 0, "", err
	}
	defer s.stop()
	driver, err := newOrderDriver(s.nc, s.js, fmt.Sprintf("S%d", bridges))
	if err != nil {
		return 0, "", err
	}
	defer driver.close()
	if _, err := driver.place(ctx); err != nil { // conditions cached, connections open
		return 0, "", err
	}
	procs := append(append(append([]*proc{}, s.bridges...), s.nats...), s.sandbox)
	var before, after []float64
	lat, elapsed := driver.closedLoop(ctx, inFlight, 3*time.Second, measure,
		func() { before = cpuTimes(procs) }, func() { after = cpuTimes(procs) })
	var parts []string
	for i, p := range procs {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", p.name, 100*(after[i]-before[i])/elapsed.Seconds()))
	}
	return float64(len(lat)) / elapsed.Seconds(), strings.Join(parts, ", "), nil
}

// cpuTimes reads each process's user+system CPU seconds from /proc.
func cpuTimes(ps []*proc) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = cpuSeconds(p.pid())
	}
	return out
}

// cpuSeconds reads a process's user+system CPU seconds from /proc (0 when
// it cannot).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): utime is
	// the 14th field of the line, stime the 15th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ = 100 on Linux)
}

// machineSeconds reads, from /proc/stat, the seconds all the machine's
// cores spent busy and in all since boot (0, 0 when it cannot).
func machineSeconds() (busy, all float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineSeconds(line)
}

// parseMachineSeconds reads the "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal (guest time is already counted in
// user and nice), in clock ticks. Idle and iowait are not busy.
func parseMachineSeconds(line string) (busy, all float64) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:9] {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0
		}
		all += t / 100 // USER_HZ = 100 on Linux
		if i != 3 && i != 4 {
			busy += t / 100
		}
	}
	return busy, all
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "processor\t:"))
}
