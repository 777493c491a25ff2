// Package ttlcache is a small, bounded cache with expiry whose concurrent
// misses for one key make one load (golang.org/x/sync/singleflight). The
// bridge keeps Inbank's rental conditions and calculations in it.
package ttlcache

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Cache maps string keys to values of type V for a while.
type Cache[V any] struct {
	ttl     time.Duration
	limit   int
	timeout time.Duration
	group   singleflight.Group
	now     func() time.Time
	hits    prometheus.Counter
	misses  prometheus.Counter

	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// Metrics counts hits and misses per cache. A nil *Metrics counts nothing.
type Metrics struct{ requests *prometheus.CounterVec }

// NewMetrics registers smartrent_cache_requests_total with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartrent_cache_requests_total",
		Help: "Cache look-ups by cache and result (hit, miss).",
	}, []string{"cache", "result"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

// New returns a cache named name (for metrics) of at most limit entries
// kept for ttl. A load runs detached from the caller that started it, for
// at most loadTimeout, so one caller giving up does not fail the others.
func New[V any](name string, ttl time.Duration, limit int, loadTimeout time.Duration, m *Metrics) *Cache[V] {
	c := &Cache[V]{ttl: ttl, limit: max(limit, 1), timeout: loadTimeout, now: time.Now, entries: map[string]entry[V]{}}
	if m != nil {
		c.hits, c.misses = m.requests.WithLabelValues(name, "hit"), m.requests.WithLabelValues(name, "miss")
	}
	return c
}

// Get returns the value for key, loading it on a miss. Errors are not
// cached. hit reports whether the value came from the cache.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (v V, hit bool, err error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		inc(c.hits)
		return e.v, true, nil
	}
	inc(c.misses)
	ch := c.group.DoChan(key, func() (any, error) {
		// A load that finished between our look above and this call has
		// cached the value and left the group: use it, not a second load.
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.v, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		v, err := load(lctx)
		if err == nil {
			c.put(key, v)
		}
		return v, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return v, false, r.Err
		}
		return r.Val.(V), false, nil
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

func inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

func (c *Cache[V]) put(key string, v V) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[key]; !exists && len(c.entries) >= c.limit {
		oldest, oldestAt := "", now.Add(c.ttl)
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
				continue
			}
			if e.expires.Before(oldestAt) {
				oldest, oldestAt = k, e.expires
			}
		}
		if len(c.entries) >= c.limit {
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = entry[V]{v: v, expires: now.Add(c.ttl)}
}

// Len is the number of entries, expired ones included until evicted.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
