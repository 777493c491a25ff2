package main

import (
	"context"
	"strings"
	"testing"
)

// TestSoakShort is the short variant of `make chaos` inside `make test`:
// the real binaries as processes, 20 orders each through bridge kills, a
// NATS restart and ingress kills.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak run builds and starts processes; skipped in -short mode")
	}
	var out strings.Builder
	err := run(context.Background(), []string{"-short"}, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kill-bridge", "nats-restart", "kill-ingress", "every order completed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
