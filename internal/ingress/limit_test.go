package ingress

import (
	"testing"
	"time"
)

// TestOrderLimits: a burst, then the rate, per order; other orders are
// not affected; and full buckets are forgotten once more than max are
// kept, so memory follows the orders called back lately.
func TestOrderLimits(t *testing.T) {
	l := newOrderLimits(1, 2, 2) // 2 at once, then 1 a second; keep 2
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 2 {
		if _, ok := l.allow("", "A", t0); !ok {
			t.Fatalf("callback %d of the burst refused", i+1)
		}
	}
	wait, ok := l.allow("", "A", t0)
	if ok || wait <= 0 || wait > time.Second || retryAfterSeconds(wait) != 1 {
		t.Fatalf("third at once: ok %v, wait %v; want refused, 1 s", ok, wait)
	}
	if _, ok := l.allow("", "B", t0); !ok {
		t.Fatal("another order was refused")
	}
	if _, ok := l.allow("shop2", "A", t0); !ok {
		t.Fatal("the same order id of another shop shares the bucket")
	}
	if _, ok := l.allow("", "A", t0.Add(time.Second)); !ok {
		t.Fatal("refused a second later")
	}
	// Long after, every bucket is full again: the next new order makes
	// room by forgetting them.
	if _, ok := l.allow("", "C", t0.Add(time.Minute)); !ok {
		t.Fatal("new order refused")
	}
	if n := len(l.byOrder); n != 1 {
		t.Fatalf("%d buckets kept, want 1 (the full ones forgotten)", n)
	}
}
