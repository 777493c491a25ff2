package ttlcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHitMissAndExpiry(t *testing.T) {
	c := New[int]("t", time.Minute, 10, time.Second, nil)
	now := time.Now()
	c.now = func() time.Time { return now }
	loads := 0
	load := func(context.Context) (int, error) { loads++; return loads, nil }
	v, hit, _ := c.Get(context.Background(), "k", load)
	if v != 1 || hit {
		t.Fatalf("first get = %d hit %v", v, hit)
	}
	v, hit, _ = c.Get(context.Background(), "k", load)
	if v != 1 || !hit {
		t.Fatalf("second get = %d hit %v", v, hit)
	}
	now = now.Add(2 * time.Minute)
	if v, _, _ = c.Get(context.Background(), "k", load); v != 2 {
		t.Fatalf("after expiry = %d, want a reload", v)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	c := New[int]("t", time.Minute, 10, time.Second, nil)
	fail := true
	load := func(context.Context) (int, error) {
		if fail {
			return 0, errors.New("boom")
		}
		return 7, nil
	}
	if _, _, err := c.Get(context.Background(), "k", load); err == nil {
		t.Fatal("no error")
	}
	fail = false
	if v, _, err := c.Get(context.Background(), "k", load); err != nil || v != 7 {
		t.Fatalf("got %d %v", v, err)
	}
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	c := New[int]("t", time.Minute, 10, time.Second, nil)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		loads.Add(1)
		<-release
		return 1, nil
	}
	var wg sync.WaitGroup
	var started sync.WaitGroup
	for range 100 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			c.Get(context.Background(), "k", load)
		})
	}
	started.Wait()
	// Callers that arrive while the load runs join it; later ones hit the
	// value it cached. Either way there is one load.
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for 100 concurrent misses", n)
	}
}

func TestBounded(t *testing.T) {
	c := New[int]("t", time.Minute, 3, time.Second, nil)
	for i := range 10 {
		c.Get(context.Background(), fmt.Sprint(i), func(context.Context) (int, error) { return i, nil })
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("%d entries, limit 3", n)
	}
}

func TestCallerGivingUpDoesNotFailTheLoad(t *testing.T) {
	c := New[int]("t", time.Minute, 10, time.Second, nil)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, _, err := c.Get(ctx, "k", func(lctx context.Context) (int, error) {
			<-release
			return 5, lctx.Err()
		})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller err = %v", err)
	}
	close(release)
	// The load finished in the background and was cached.
	// The load goes on for the others: a new caller joins it or hits its value.
	v, _, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("reloaded") })
	if err != nil || v != 5 {
		t.Fatalf("v = %d, err = %v", v, err)
	}
}
