package main

import (
	"math"
	"os"
	"testing"
)

func TestParseMachineSeconds(t *testing.T) {
	for _, tc := range []struct {
		line      string
		busy, all float64
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// idle and iowait are not busy; guest time is inside user and nice.
		{"cpu  100 20 30 400 50 6 7 8 9 10", 1.71, 6.21},
		{"cpu 0 0 0 500 0 0 0 0", 0, 5},
		{"cpu0 100 20 30 400 50 6 7 8 9 10", 0, 0}, // one core's line, not the machine's
		{"cpu 100 20 30", 0, 0},
		{"cpu 100 20 30 400 x 6 7 8", 0, 0},
	} {
		busy, all := parseMachineSeconds(tc.line)
		if math.Abs(busy-tc.busy) > 1e-9 || math.Abs(all-tc.all) > 1e-9 {
			t.Errorf("parseMachineSeconds(%q) = %v, %v; want %v, %v", tc.line, busy, all, tc.busy, tc.all)
		}
	}
}

// TestMachineSecondsGrowWithWork reads the real /proc/stat around some
// work of this process: the busy seconds must not go back, nor exceed
// the time that passed on all cores.
func TestMachineSecondsGrowWithWork(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat on this system: soak versus reports no machine figures here")
	}
	b0, a0 := machineSeconds()
	if b0 <= 0 || a0 < b0 {
		t.Fatalf("since boot: busy %v s of %v s", b0, a0)
	}
	own0 := cpuSeconds(os.Getpid())
	x := 0.0
	for cpuSeconds(os.Getpid()) < own0+0.2 { // this process busy for 200 ms at least
		for i := range 100000 {
			x += math.Sqrt(float64(i))
		}
	}
	b1, a1 := machineSeconds()
	if b1-b0 < 0.1 || b1-b0 > a1-a0 {
		t.Errorf("after %.2f s of this process's CPU: machine busy %.2f s more of %.2f s (sum %v)", cpuSeconds(os.Getpid())-own0, b1-b0, a1-a0, x)
	}
}
