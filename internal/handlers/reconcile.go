package handlers

import (
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
)

// OpenOrders is the index of orders that may still need Inbank
// ([orderstore.OpenIndex]): reconciliation reads these, so its cost follows
// the open orders, not every order ever stored.
type OpenOrders interface {
	// Add indexes the order with the ids of its events known published
	// (see "What an order costs in JetStream writes").
	Add(ctx context.Context, key string, published []string) error
	// Published returns the ids Add was last given for the order.
	Published(ctx context.Context, key string) ([]string, error)
	Remove(ctx context.Context, key string) error
	Keys(ctx context.Context) ([]string, error)
	// Lease takes the named lease for ttl unless another bridge holds it.
	Lease(ctx context.Context, name string, ttl time.Duration) (bool, error)
}

// Lister lists every stored order (for the one-time backfill of the
// index from a bucket written before it existed).
type Lister interface {
	All(ctx context.Context) iter.Seq2[order.Order, error]
}

// reconcileWorkers bounds the orders one pass advances at once.
const reconcileWorkers = 8

// Reconcile re-reads from Inbank every open order whose last change is
// older than half the interval and drives it through the same transitions
// as a callback would, so orders complete with no callback at all. An
// activated order whose session has not reached a final status is
// re-read too (for a day), so its last session.status_changed is
// published without callbacks. Settled orders are retired from the index
// (written once more, so they carry their retention). It returns how many
// orders it advanced.
func (w *Workflow) Reconcile(ctx context.Context, open OpenOrders, interval time.Duration) (int, error) {
	keys, err := open.Keys(ctx)
	if err != nil {
		return 0, err
	}
	now := w.now()
	counts := map[string]int{}
	oldest := map[string]float64{}
	var due []string
	for _, key := range keys {
		o, rev, err := w.cfg.Store.LoadFresh(ctx, key)
		if ctx.Err() != nil {
			// Stopped (shutdown) while looking: no fault of any order, and
			// no gauges from a partial count.
			return 0, ctx.Err()
		}
		switch {
		case errors.Is(err, orderstore.ErrNotFound):
			// Indexed before its creation, and never created (or expired).
			if err := open.Remove(ctx, key); err != nil && ctx.Err() == nil {
				w.log.WarnContext(ctx, "reconcile: cannot retire an index entry", "key", key, "err", err)
			}
			continue
		case err != nil:
			w.log.ErrorContext(ctx, "reconcile: cannot read an order", "key", key, "err", err)
			continue
		}
		if o.Settled(now) {
			w.retire(ctx, open, key, o, rev)
			continue
		}
		counts[o.State]++
		if !order.Final(o.State) || len(o.Outbox) > 0 {
			oldest[o.State] = max(oldest[o.State], now.Sub(o.UpdatedAt).Seconds())
		}
		// Half an interval of quiet, not a whole one: passes come every
		// interval ± 5 %, and an order that changed just after one pass
		// must be due at the next, so it moves on within 2 × interval.
		if now.Sub(o.UpdatedAt) < interval/2 || o.ReconcileClaim.HeldBy(w.cfg.Owner, now) {
			continue
		}
		due = append(due, key)
	}
	w.cfg.Metrics.setStates(counts, oldest)

	var advanced sync.WaitGroup
	var mu sync.Mutex
	n := 0
	work := make(chan string)
	for range min(reconcileWorkers, len(due)) {
		advanced.Go(func() {
			for key := range work {
				if w.reconcileOne(ctx, key, interval) {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		})
	}
	for _, key := range due {
		if ctx.Err() != nil {
			break
		}
		work <- key
	}
	close(work)
	advanced.Wait()
	w.cfg.Metrics.reconciled("orders", n)
	return n, ctx.Err()
}

// reconcileOne claims a due order for this bridge and advances it.
func (w *Workflow) reconcileOne(ctx context.Context, key string, interval time.Duration) bool {
	_, claimed, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		now := w.now()
		return o.ClaimReconciliation(w.cfg.Owner, now.Add(interval), now), nil
	})
	if err == nil && !claimed {
		return false // another bridge reconciles it
	}
	if err == nil {
		err = w.Advance(ctx, key, true)
	}
	var we *waitError
	switch {
	case err != nil && ctx.Err() != nil:
		// The pass was stopped (shutdown): nothing is wrong with the order.
		w.log.InfoContext(ctx, "reconcile: stopped before the order moved; the next pass takes it up", "order_id", key)
		return false
	case err != nil && !errors.As(err, &we):
		w.log.WarnContext(ctx, "reconcile: order not advanced", "order_id", key, "err", err)
		return false
	}
	return true
}

// retire writes a settled order once more (so it carries its retention
// and no customer data) and removes it from the open index.
func (w *Workflow) retire(ctx context.Context, open OpenOrders, key string, o order.Order, rev uint64) {
	if _, err := w.cfg.Store.Save(ctx, key, o, rev); err != nil {
		if !errors.Is(err, orderstore.ErrConflict) && ctx.Err() == nil {
			w.log.WarnContext(ctx, "reconcile: cannot retire an order", "key", key, "err", err)
		}
		return // changed meanwhile: the next pass looks again
	}
	if err := open.Remove(ctx, key); err != nil && ctx.Err() == nil {
		w.log.WarnContext(ctx, "reconcile: cannot retire an index entry", "key", key, "err", err)
	}
}

// RunReconciler reconciles every interval (with 10 % jitter) until ctx
// ends. One bridge at a time does the passes: the one holding the lease,
// which it renews at each pass; the others export no order gauges, so a
// dashboard's sum is the one reporter's.
func (w *Workflow) RunReconciler(ctx context.Context, open OpenOrders, interval time.Duration) {
	for {
		jitter := time.Duration(rand.Int64N(int64(interval)/10 + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval - interval/20 + jitter):
		}
		// The holder renews the lease each pass; it lapses two intervals
		// after its holder stopped (per-key TTLs are whole seconds at least).
		held, err := open.Lease(ctx, "reconciler", max(2*interval, time.Second))
		if err != nil && ctx.Err() == nil {
			w.log.ErrorContext(ctx, "reconcile: lease", "err", err)
		}
		if !held {
			w.cfg.Metrics.clearStates()
			continue
		}
		n, err := w.Reconcile(ctx, open, interval)
		if err != nil && ctx.Err() == nil {
			w.cfg.Metrics.reconciled("error", 1)
			w.log.ErrorContext(ctx, "reconcile pass failed", "err", err)
			continue
		}
		w.cfg.Metrics.reconciled("ok", 1)
		if n > 0 {
			w.log.InfoContext(ctx, "reconcile pass", "orders_advanced", n)
		}
	}
}

// Backfill indexes the open orders of a bucket written before the index
// existed and retires the settled ones (giving them their retention),
// once: the index remembers that it was done.
func (w *Workflow) Backfill(ctx context.Context, all Lister, open interface {
	OpenOrders
	Backfilled(context.Context) (bool, error)
	MarkBackfilled(context.Context) error
}) (indexed, retired int, err error) {
	done, err := open.Backfilled(ctx)
	if err != nil || done {
		return 0, 0, err
	}
	now := w.now()
	for o, err := range all.All(ctx) {
		if err != nil {
			return indexed, retired, err
		}
		key := o.Key()
		if !o.Settled(now) {
			if err := open.Add(ctx, key, nil); err != nil {
				return indexed, retired, err
			}
			indexed++
			continue
		}
		o, rev, err := w.cfg.Store.LoadFresh(ctx, key)
		if err != nil {
			continue // gone or unreadable: nothing to keep
		}
		if _, err := w.cfg.Store.Save(ctx, key, o, rev); err != nil && !errors.Is(err, orderstore.ErrConflict) {
			return indexed, retired, err
		}
		retired++
	}
	return indexed, retired, open.MarkBackfilled(ctx)
}

// ReconcileNow re-reads the order stored under key ([order.StoreKey]) from
// Inbank and drives it at once (the operator's `orders reconcile`). It
// returns the order's state afterwards.
func (w *Workflow) ReconcileNow(ctx context.Context, key string) (string, error) {
	err := w.Advance(ctx, key, true)
	o, _, lerr := w.cfg.Store.Load(ctx, key)
	if lerr != nil {
		return "", lerr
	}
	return o.State, err
}
