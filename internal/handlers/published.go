package handlers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/smartrent-bridge/bridge/internal/order"
)

// An order's outbox may list events JetStream has already stored: the
// input that placed the order leaves session.created there and names it
// published in the order's open-index entry instead of writing the order
// once more (see "What an order costs in JetStream writes"). Every load
// of an order therefore drops the events known published before anything
// is decided on it, so none is published again once the server's
// duplicate window no longer covers it.

// publications remembers the ids of the last events this process saw
// JetStream acknowledge: the loads that follow a publication in the same
// Advance need no read of the index to know it.
type publications struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string // the same ids, oldest overwritten first
	next int
}

// rememberedPublications bounds publications: the loads that need it
// come within milliseconds of the publication.
const rememberedPublications = 4096

func newPublications() *publications {
	return &publications{ids: make(map[string]struct{}, rememberedPublications), ring: make([]string, rememberedPublications)}
}

func (p *publications) add(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ids[id]; ok {
		return
	}
	delete(p.ids, p.ring[p.next])
	p.ring[p.next] = id
	p.ids[id] = struct{}{}
	p.next = (p.next + 1) % len(p.ring)
}

func (p *publications) has(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

// publishedIDs collects, for one input placing an order, the ids of the
// order's events known published; the input writes them into the order's
// index entry before it is acknowledged.
type publishedIDs struct {
	mu  sync.Mutex
	ids []string
}

func (c *publishedIDs) add(ids ...string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if !slices.Contains(c.ids, id) {
			c.ids = append(c.ids, id)
		}
	}
}

func (c *publishedIDs) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

type publishedKey struct{}

// indexingPublications marks ctx as an input that writes the order's index
// entry after its Advance: its publications go there (c), not into a
// write of the order.
func indexingPublications(ctx context.Context, c *publishedIDs) context.Context {
	return context.WithValue(ctx, publishedKey{}, c)
}

func publicationsIndexed(ctx context.Context) *publishedIDs {
	c, _ := ctx.Value(publishedKey{}).(*publishedIDs)
	return c
}

// publishedFilter is the Store as the workflow reads it: every loaded
// order comes without the outbox events known published.
type publishedFilter struct {
	Store
	w *Workflow
}

func (s publishedFilter) Load(ctx context.Context, key string) (order.Order, uint64, error) {
	return s.filtered(ctx, key, s.Store.Load)
}

func (s publishedFilter) LoadFresh(ctx context.Context, key string) (order.Order, uint64, error) {
	return s.filtered(ctx, key, s.Store.LoadFresh)
}

func (s publishedFilter) filtered(ctx context.Context, key string, load func(context.Context, string) (order.Order, uint64, error)) (order.Order, uint64, error) {
	o, rev, err := load(ctx, key)
	if err == nil {
		err = s.w.dropPublished(ctx, key, &o)
	}
	return o, rev, err
}

// dropPublished removes from o's outbox the events this process saw
// stored and, for events decided more than half the duplicate window ago,
// those the index names as published. A younger event is left in: if it
// was stored, storing it again falls within the duplicate window (half
// of it is the margin for clocks and a slow first publication) and is
// ignored by the server.
func (w *Workflow) dropPublished(ctx context.Context, key string, o *order.Order) error {
	if len(o.Outbox) == 0 {
		return nil
	}
	indexed := publicationsIndexed(ctx)
	indexed.add(o.DropPublished(w.published.has)...)
	if w.cfg.Open == nil || !o.OutboxDecidedBefore(w.now().Add(-w.cfg.DuplicateWindow/2)) {
		return nil
	}
	ids, err := w.cfg.Open.Published(ctx, key)
	if err != nil {
		return fmt.Errorf("order %s: events known published: %w", key, err)
	}
	indexed.add(o.DropPublished(func(id string) bool { return slices.Contains(ids, id) })...)
	return nil
}
