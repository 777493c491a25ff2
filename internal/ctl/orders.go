package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

func (c *session) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *session) store(ctx context.Context) (*orderstore.StateStore[order.Order], error) {
	if err := c.dial(); err != nil {
		return nil, err
	}
	kv, err := c.js.KeyValue(ctx, streams.BucketOrders)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", streams.BucketOrders, err)
	}
	return orderstore.NewStateStore[order.Order](kv), nil
}

// orderArgs checks an order id and the --shop alias before any NATS call.
func (c *session) orderArgs(id string) error {
	if err := ids.CheckOrderID(id); err != nil {
		return usageError{err}
	}
	if err := ids.CheckShopAlias(c.shop); err != nil {
		return usageError{err}
	}
	return nil
}

type ordersGet struct {
	OrderID string `arg:"" name:"order-id" help:"the shop's order id"`
}

func (g *ordersGet) Run(ctx context.Context, c *session) error {
	if err := c.orderArgs(g.OrderID); err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	key := ids.StateKey(c.shop, g.OrderID)
	o, rev, err := st.Load(ctx, key)
	if errors.Is(err, orderstore.ErrNotFound) {
		return failf(ExitNotFound, "order %s not found", g.OrderID)
	}
	if err != nil {
		return err
	}
	if err := c.dropPublished(ctx, key, &o); err != nil {
		return err
	}
	o.Placed = nil // the order's input is not an operator's business (and may hold personal data)
	if c.json {
		return c.printJSON(o)
	}
	c.printOrder(o, rev)
	return nil
}

// dropPublished removes from the order's outbox the events its open-index
// entry names as published: a new order's outbox keeps session.created
// after its publication (the bridge's workflow reads orders the same way).
func (c *session) dropPublished(ctx context.Context, key string, o *order.Order) error {
	if len(o.Outbox) == 0 {
		return nil
	}
	open, err := orderstore.OpenIndexOf(ctx, c.js, "smartrentctl")
	if err != nil {
		return err
	}
	published, err := open.Published(ctx, key)
	if err != nil {
		return err
	}
	o.DropPublished(func(id string) bool { return slices.Contains(published, id) })
	return nil
}

func (c *session) printOrder(o order.Order, rev uint64) {
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("order", o.OrderID)
	row("shop", o.Shop)
	row("state", o.State)
	row("revision", strconv.FormatUint(rev, 10))
	row("product", o.ProductCode)
	row("session", o.SessionUUID)
	row("session status", o.SessionStatus)
	row("contract", o.ContractUUID)
	row("activated via", o.ActivatedVia)
	row("failure", o.Failure)
	row("created", o.CreatedAt.Format(time.RFC3339))
	row("updated", o.UpdatedAt.Format(time.RFC3339))
	if len(o.Outbox) > 0 {
		row("unpublished events", strconv.Itoa(len(o.Outbox)))
	}
	tw.Flush()
	fmt.Fprintln(c.out, "\nhistory")
	tw = tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	for _, h := range o.History {
		fmt.Fprintf(tw, "  %s\t%s\n", h.At.Format(time.RFC3339), h.What)
	}
	tw.Flush()
}

type ordersList struct {
	State     string        `help:"only orders in this state (new, pending, granted, activated, rejected, failed, declined, cancelled, expired)"`
	OlderThan time.Duration `help:"only orders whose last change is older than this"`
	Limit     int           `default:"100" help:"print at most this many (0: all); the oldest first"`
	All       bool          `help:"also finished orders: reads every order kept (ORDER_RETENTION, 30 days by default), not only the open-order index"`
}

// orderLine is one line of orders list.
type orderLine struct {
	OrderID   string    `json:"orderId"`
	Shop      string    `json:"shop"`
	State     string    `json:"state"`
	Session   string    `json:"sessionStatus,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (l *ordersList) Run(ctx context.Context, c *session) error {
	if l.Limit < 0 {
		return usageError{errors.New("--limit must not be negative")}
	}
	if c.shop != "" {
		if err := ids.CheckShopAlias(c.shop); err != nil {
			return usageError{err}
		}
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var lines []orderLine
	keep := func(o order.Order) {
		if (l.State != "" && o.State != l.State) || now.Sub(o.UpdatedAt) < l.OlderThan || (c.shop != "" && o.Shop != ids.ShopAlias(c.shop)) {
			return
		}
		lines = append(lines, orderLine{o.OrderID, cmp.Or(o.Shop, ids.DefaultShop), o.State, o.SessionStatus, o.UpdatedAt})
	}
	if l.All {
		for o, err := range st.All(ctx) {
			if err != nil {
				return err
			}
			keep(o)
		}
	} else {
		// The open-order index: the orders that may still need Inbank,
		// not every order kept.
		open, err := orderstore.OpenIndexOf(ctx, c.js, "smartrentctl")
		if err != nil {
			return err
		}
		keys, err := open.Keys(ctx)
		if err != nil {
			return err
		}
		for _, key := range keys {
			o, _, err := st.Load(ctx, key)
			if errors.Is(err, orderstore.ErrNotFound) {
				continue // indexed, then finished and expired
			}
			if err != nil {
				return err
			}
			keep(o)
		}
	}
	slices.SortFunc(lines, func(a, b orderLine) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	more := 0
	if l.Limit > 0 && len(lines) > l.Limit {
		more, lines = len(lines)-l.Limit, lines[:l.Limit]
	}
	if more > 0 {
		fmt.Fprintf(c.errOut, "smartrentctl: %d more not shown (--limit)\n", more)
	}
	if c.json {
		if lines == nil {
			lines = []orderLine{}
		}
		return c.printJSON(lines)
	}
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tSHOP\tSTATE\tSESSION\tUPDATED\tAGE")
	for _, l := range lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.OrderID, l.Shop, l.State, l.Session, l.UpdatedAt.Format(time.RFC3339), now.Sub(l.UpdatedAt).Round(time.Second))
	}
	return tw.Flush()
}

type ordersReconcile struct {
	OrderID string `arg:"" name:"order-id" help:"the shop's order id"`
}

func (r *ordersReconcile) Run(ctx context.Context, c *session) error {
	if err := c.orderArgs(r.OrderID); err != nil {
		return err
	}
	if err := c.dial(); err != nil {
		return err
	}
	body, _ := json.Marshal(ReconcileRequest{OrderID: r.OrderID, Shop: c.shop})
	m, err := c.nc.RequestWithContext(ctx, SubjectReconcile, body)
	if err != nil {
		return fmt.Errorf("no bridge answered on %s: %w", SubjectReconcile, err)
	}
	var reply ReconcileReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	if c.json {
		if err := c.printJSON(reply); err != nil {
			return err
		}
	}
	switch {
	case !reply.Found:
		return failf(ExitNotFound, "order %s not found", r.OrderID)
	case reply.Error != "":
		return fmt.Errorf("order %s not reconciled: %s", r.OrderID, reply.Error)
	}
	if !c.json {
		fmt.Fprintf(c.out, "order %s reconciled: %s\n", r.OrderID, reply.State)
	}
	return nil
}
