package handlers

import (
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"time"
)

// Lister lists every stored order.
type Lister interface {
	All(ctx context.Context) iter.Seq2[Order, error]
}

// Reconcile re-reads from Inbank every unfinished order whose last change
// is older than half the interval and drives it through the same transitions as a
// callback would, so orders complete with no callback at all. An
// activated order whose session has not reached a final status is
// re-read too (for a day), so its last session.status_changed is
// published without callbacks. A claim in
// the order (compare-and-set) lets one bridge at a time reconcile it. It
// returns how many orders it advanced.
func (w *Workflow) Reconcile(ctx context.Context, orders Lister, interval time.Duration) (int, error) {
	now := w.now()
	counts := map[string]int{}
	oldest := map[string]float64{}
	var due []string
	for o, err := range orders.All(ctx) {
		if err != nil {
			w.log.ErrorContext(ctx, "reconcile: cannot read an order", "err", err)
			continue
		}
		counts[o.State]++
		unfinished := !Final(o.State) || len(o.Outbox) > 0
		if !unfinished && !o.awaitsSessionEnd(now) {
			continue
		}
		if unfinished {
			oldest[o.State] = max(oldest[o.State], now.Sub(o.UpdatedAt).Seconds())
		}
		// Half an interval of quiet, not a whole one: passes come every
		// interval ± 5 %, and an order that changed just after one pass
		// must be due at the next, so it moves on within 2 × interval.
		if now.Sub(o.UpdatedAt) < interval/2 || o.ReconcileClaim.HeldBy(w.cfg.Owner, now) {
			continue
		}
		due = append(due, o.Key())
	}
	w.cfg.Metrics.setStates(counts, oldest)
	advanced := 0
	for _, id := range due {
		if ctx.Err() != nil {
			return advanced, ctx.Err()
		}
		_, err := w.update(ctx, id, func(o *Order) error {
			if o.ReconcileClaim.HeldBy(w.cfg.Owner, w.now()) {
				return errSkip
			}
			o.ReconcileClaim = &Claim{Owner: w.cfg.Owner, Until: w.now().Add(interval)}
			return nil
		})
		if errors.Is(err, errSkip) {
			continue
		}
		if err == nil {
			err = w.Advance(ctx, id, true)
		}
		var we *waitError
		if err != nil && !errors.As(err, &we) {
			w.log.WarnContext(ctx, "reconcile: order not advanced", "order_id", id, "err", err)
			continue
		}
		advanced++
	}
	w.cfg.Metrics.reconciled("orders", advanced)
	return advanced, nil
}

// RunReconciler reconciles every interval (with 10 % jitter, so bridges
// started together spread out) until ctx ends.
func (w *Workflow) RunReconciler(ctx context.Context, orders Lister, interval time.Duration) {
	for {
		jitter := time.Duration(rand.Int64N(int64(interval)/10 + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval - interval/20 + jitter):
		}
		n, err := w.Reconcile(ctx, orders, interval)
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

// ReconcileNow re-reads the order stored under key ([StoreKey]) from
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
