package demo

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo as `make demo` does and checks its summary.
func TestDemo(t *testing.T) {
	var out strings.Builder
	w := &lockedWriter{w: &out}
	err := Run(context.Background(), Config{Out: w, Timeout: 50 * time.Second, DataDir: t.TempDir()})
	w.mu.Lock()
	text := out.String()
	w.mu.Unlock()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, text)
	}
	for _, want := range []string{
		"ORD-1001", "session.created", "contract.activated", "via=api", "via=portal",
		"reason=PERIOD_NOT_OFFERED", "pending → declined", "pending → expired",
		"Every order reached its expected state.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(text, "MISMATCH") {
		t.Errorf("summary has a mismatch:\n%s", text)
	}
}
