package ingress

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-order callback limit. Inbank sends a session's few
// transitions twice each (browser and server) and retries what failed:
// 20 at once and one every 5 s after that leave it room, while a leaked
// callback URL can store no more than that, and make the bridge re-read
// the session no more often.
const (
	DefaultCallbackBurst = 20
	DefaultCallbackRate  = rate.Limit(0.2)
	// maxLimitedOrders is how many buckets are kept before the full ones
	// are forgotten (about 100 bytes each).
	maxLimitedOrders = 100_000
)

// orderLimits is a token bucket per order (shop and order id: a callback
// URL made with a rotated-out secret shares its order's bucket). A bucket
// that is full again is the same as a new one, so when more than max are
// kept the full ones are forgotten: memory follows the orders called back
// lately, not every order ever.
type orderLimits struct {
	rate  rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	byOrder map[string]*rate.Limiter
}

func newOrderLimits(r rate.Limit, burst, max int) *orderLimits {
	return &orderLimits{rate: r, burst: burst, max: max, byOrder: map[string]*rate.Limiter{}}
}

// allow takes one callback from the order's bucket, or says how long until
// the bucket has one.
func (l *orderLimits) allow(shop, orderID string, now time.Time) (wait time.Duration, ok bool) {
	key := shop + "\x00" + orderID
	l.mu.Lock()
	lim := l.byOrder[key]
	if lim == nil {
		if len(l.byOrder) >= l.max {
			l.forgetFull(now)
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.byOrder[key] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// forgetFull drops the buckets that are full again. l.mu is held.
func (l *orderLimits) forgetFull(now time.Time) {
	for k, lim := range l.byOrder {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.byOrder, k)
		}
	}
}

// retryAfterSeconds is wait as Retry-After: whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
