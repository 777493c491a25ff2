package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// Input is one input as the workflow sees it, whatever carried it.
type Input struct {
	ID        string    // the event's id: an order.rejected for it has its id from it
	Kind      string    // events.InputOrderPlaced, …InputDeviceShipped, …InputDeviceDelivered, "" for a callback
	Published time.Time // when it was stored: how long an unknown order has been waited for
	Attempts  int       // deliveries so far, for order.failed
}

// inputOf is the input a delivery carries.
func inputOf(id string, d streams.Delivery) Input {
	return Input{ID: id, Kind: inputType(d.Subject), Published: d.Published, Attempts: int(d.NumDelivered)}
}

// Handle records one input event in its order and advances the order. It
// implements [streams.Handler].
func (w *Workflow) Handle(ctx context.Context, env events.Envelope, d streams.Delivery) error {
	tp := telemetry.TraceParent(ctx) // the consumer's span, when tracing is on
	if tp == "" {
		tp = events.TraceParent(env.Event)
	}
	ctx = withTraceParent(ctx, tp)
	in := inputOf(env.Event.ID(), d)
	var err error
	switch data := env.Data.(type) {
	case *events.OrderPlaced:
		err = w.orderPlaced(ctx, in, data)
	case *events.DeviceShipped:
		err = w.device(ctx, in, ids.ShopAlias(data.Shop), data.OrderID, data.AssetIdentifiers, func(o *order.Order) {
			at := w.now()
			if data.ShippedAt != nil {
				at = data.ShippedAt.UTC()
			}
			o.ShippedAt, o.Carrier, o.Tracking = &at, data.Carrier, data.TrackingNumber
		})
	case *events.DeviceDelivered:
		err = w.device(ctx, in, ids.ShopAlias(data.Shop), data.OrderID, data.AssetIdentifiers, func(o *order.Order) {
			at := w.now()
			if data.DeliveredAt != nil {
				at = data.DeliveredAt.UTC()
			}
			o.DeliveredAt = &at
		})
	case *events.CallbackReceived:
		err = w.callback(ctx, in, data)
	default:
		err = unprocessable(fmt.Errorf("no handler for %s", env.Event.Type()))
	}
	return AsConsumerError(err)
}

// orderPlaced makes a new order's first move straight away: its first
// write creates it (with the session's claim, or rejected), so a new
// order costs no write of its own.
func (w *Workflow) orderPlaced(ctx context.Context, in Input, p *events.OrderPlaced) error {
	now := w.now()
	alias := ids.ShopAlias(p.Shop)
	product := p.ProductCode
	if sh, ok := w.shops[alias]; ok && product == "" {
		product = sh.productCode
	}
	o := order.Order{
		OrderID: p.OrderID, Shop: alias, State: order.StateNew, CreatedAt: now, UpdatedAt: now,
		Placed: p, ProductCode: product, Period: p.Period, TraceParent: traceParentFrom(ctx),
	}
	o.Note(now, "order placed")
	key := o.Key()
	// The open index gets the order alongside its first write. The input
	// is acknowledged only after both are written, so an order that is
	// not final is always in the index or still has its order.placed to
	// come again (which writes the index entry again).
	indexed := make(chan error, 1)
	go func() { indexed <- w.index(ctx, key) }()
	err := w.advance(ctx, key, false, &o)
	if ierr := <-indexed; ierr != nil {
		// Whatever the order did, it is not acknowledged unindexed: the
		// order.placed comes again and writes the entry.
		return fmt.Errorf("index order %s: %w", p.OrderID, ierr)
	}
	if !errors.Is(err, orderstore.ErrExists) {
		return err
	}
	// A second order.placed makes no new session. One exception: an
	// order that failed before it had a session is tried again, which is
	// what an operator's `dlq replay` of its order.placed means.
	_, err = w.update(ctx, key, func(o *order.Order) error {
		if err := identity(o, alias, p.OrderID); err != nil {
			return err
		}
		if o.State != order.StateFailed || o.SessionUUID != "" {
			return errSkip
		}
		if in.Attempts > 1 {
			// This very message is being redelivered and its order failed
			// meanwhile (its attempts ran out on another path): it is
			// dead-lettered, so `dlq replay` can try it again.
			return unprocessable(fmt.Errorf("order %s failed: %s", p.OrderID, o.Failure))
		}
		// An operator's replay is a new run of attempts (MAX_DELIVER again).
		o.State, o.Failure, o.Placed, o.SessionAttempts = order.StateNew, "", p, 0
		o.Note(w.now(), "order placed again after a failure")
		return nil
	})
	if errors.Is(err, errSkip) {
		w.log.InfoContext(ctx, "order.placed for a known order; no new session", "order_id", p.OrderID)
	} else if err != nil {
		return err
	}
	return w.Advance(ctx, key, false)
}

// index adds an order to the open index (none in tests without one).
func (w *Workflow) index(ctx context.Context, key string) error {
	if w.cfg.Open == nil {
		return nil
	}
	return w.cfg.Open.Add(ctx, key)
}

// device records a shipment or delivery. An order that has not arrived
// yet is waited for; a wrong identifier is rejected without touching the
// order; a late or repeated event is a no-op.
func (w *Workflow) device(ctx context.Context, in Input, shop, orderID string, ids []events.AssetIdentifier, apply func(*order.Order)) error {
	key := order.StoreKey(shop, orderID)
	o, _, err := w.cfg.Store.Load(ctx, key)
	if err == nil {
		err = identity(&o, shop, orderID)
	}
	if errors.Is(err, orderstore.ErrNotFound) {
		if age := w.now().Sub(in.Published); age < w.cfg.UnknownOrderWait {
			return wait(min(2*time.Second, w.cfg.UnknownOrderWait-age), "order %s not known yet", orderID)
		}
		return w.rejectInput(ctx, in, shop, orderID, order.NewRejection(events.ReasonOrderUnknown, "no order.placed for order %s", orderID))
	}
	if err != nil {
		return err
	}
	switch {
	case o.State == order.StateActivated:
		return nil // late or repeated: the order is done
	case order.Final(o.State):
		return w.rejectInput(ctx, in, shop, orderID, order.NewRejection(events.ReasonOrderNotActive, "order %s is %s", orderID, o.State))
	}
	if len(ids) > 0 {
		if r := order.CheckIdentifiers(ids, o.IdentifierTypes); r != nil {
			return w.rejectInput(ctx, in, shop, orderID, r)
		}
	}
	_, err = w.update(ctx, key, func(o *order.Order) error {
		apply(o)
		if len(ids) > 0 {
			switch {
			case len(o.IdentifiersAssigned) > 0 && !slices.Equal(o.IdentifiersAssigned, ids):
				w.log.WarnContext(ctx, "identifiers differ from those already assigned; keeping the assigned ones", "order_id", orderID, "input", in.Kind)
			case len(o.IdentifiersAssigned) == 0:
				o.Identifiers = slices.Clone(ids)
			}
		}
		o.Note(w.now(), in.Kind)
		return nil
	})
	if err != nil {
		return err
	}
	return w.Advance(ctx, key, false)
}

// clockSkew is how far the bridge's clock and nats-server's may disagree
// when a callback's stored time is compared with a session read's start.
const clockSkew = time.Second

// callback is a hint: it marks the order for a fresh read of the session.
// A read that began after the callback was stored has answered it already.
func (w *Workflow) callback(ctx context.Context, in Input, c *events.CallbackReceived) error {
	// The callback token named the shop (the ingress put it in the event):
	// the order is looked up under that shop only.
	shop := ids.ShopAlias(c.Shop)
	key := order.StoreKey(shop, c.OrderID)
	answered := false
	_, err := w.update(ctx, key, func(o *order.Order) error {
		if err := identity(o, shop, c.OrderID); err != nil {
			return err
		}
		answered = o.RefreshReadAt != nil && o.RefreshReadAt.After(in.Published.Add(clockSkew))
		if (order.Final(o.State) && o.State != order.StateActivated) || o.RefreshRequested || answered {
			return errSkip
		}
		o.RefreshRequested, o.RefreshTraceParent = true, traceParentFrom(ctx)
		return nil
	})
	switch {
	case errors.Is(err, orderstore.ErrNotFound):
		if age := w.now().Sub(in.Published); age < w.cfg.UnknownOrderWait {
			return wait(min(2*time.Second, w.cfg.UnknownOrderWait-age), "order %s not known yet", c.OrderID)
		}
		w.log.WarnContext(ctx, "callback for an order this bridge never saw; ignored", "order_id", c.OrderID)
		return nil
	case errors.Is(err, errSkip) && answered:
		return nil
	case errors.Is(err, errSkip):
	case err != nil:
		return err
	}
	return w.Advance(ctx, key, false)
}

// rejectInput publishes order.rejected for one input, leaving the order
// as it is. Its id follows from the input's, so a redelivery publishes
// nothing new.
func (w *Workflow) rejectInput(ctx context.Context, in Input, shop, orderID string, r *order.Rejection) error {
	w.log.WarnContext(ctx, "input rejected", "order_id", orderID, "input", in.Kind, "reason", r.Reason) // the context names the shop
	return w.publishNow(ctx, orderID, events.TypeOrderRejected, order.StoreKey(shop, orderID)+"\x00"+in.ID, events.OrderRejected{
		OrderID: orderID, Shop: shop, InputType: in.Kind, Reason: r.Reason, Message: r.Message,
	})
}

func (w *Workflow) publishNow(ctx context.Context, orderID, typ, discriminator string, data any) error {
	e, err := w.cfg.Codec.New(w.cfg.Source, typ, orderID, data)
	if err != nil {
		return err
	}
	e.SetID(order.EventID(orderID, typ, discriminator))
	if tp := traceParentFrom(ctx); tp != "" {
		e.SetExtension(events.ExtensionTraceParent, tp)
	}
	if _, err := w.cfg.Publisher.Publish(ctx, e); err != nil {
		return fmt.Errorf("publish %s for order %s: %w", typ, orderID, err)
	}
	w.cfg.Metrics.published(typ)
	return nil
}

// inputType names the input of a subject, for order.rejected.
func inputType(subject string) string {
	switch subject {
	case events.SubjectOrderPlaced:
		return events.InputOrderPlaced
	case events.SubjectDeviceShipped:
		return events.InputDeviceShipped
	case events.SubjectDeviceDelivered:
		return events.InputDeviceDelivered
	}
	return ""
}

// Invalid tells the order named by an undecodable input (order.rejected
// INVALID_ORDER); an invalid order.placed ends its order. It implements
// [streams.Handler].
func (w *Workflow) Invalid(ctx context.Context, d streams.Delivery, de *events.DecodeError) error {
	// An undecodable message has no event id: the stream position names it.
	in := inputOf(fmt.Sprintf("%s-%d", d.Stream, d.StreamSeq), d)
	input := in.Kind
	if de.OrderID == "" || input == "" {
		return nil // nothing to tell: the dead letter is the record
	}
	shop := ids.ShopAlias(de.Shop)
	if input == events.InputOrderPlaced {
		now := w.now()
		o := order.Order{OrderID: de.OrderID, Shop: shop, State: order.StateRejected, CreatedAt: now, UpdatedAt: now}
		o.Note(now, "rejected: INVALID_ORDER")
		if _, err := w.cfg.Store.Create(ctx, o.Key(), o); err != nil && !errors.Is(err, orderstore.ErrExists) {
			return err
		}
	}
	return w.publishNow(ctx, de.OrderID, events.TypeOrderRejected, in.ID, events.OrderRejected{
		OrderID: de.OrderID, Shop: shop, InputType: input, Reason: events.ReasonInvalidOrder, Message: de.Err.Error(),
	})
}

// GiveUp reports an input that failed permanently or ran out of
// deliveries with order.failed (once: the order keeps it in its state).
// It implements [streams.Handler].
func (w *Workflow) GiveUp(ctx context.Context, env events.Envelope, d streams.Delivery, cause error) error {
	in := inputOf(env.Event.ID(), d)
	orderID := env.OrderID()
	shop := shopOfData(env.Data)
	key := order.StoreKey(shop, orderID)
	step := "handle_" + in.Kind
	var se *StepError
	if errors.As(cause, &se) {
		step = se.Step
	}
	if in.Kind == events.InputOrderPlaced {
		_, err := w.update(ctx, key, func(o *order.Order) error {
			if order.Final(o.State) {
				return errSkip
			}
			o.Fail(step, cause, in.Attempts, w.now())
			return nil
		})
		switch {
		case errors.Is(err, errSkip):
			return nil // already final: its event is out or in the outbox
		case err != nil && !errors.Is(err, orderstore.ErrNotFound):
			return err
		case err == nil:
			return w.Advance(ctx, key, false)
		}
	}
	return w.publishNow(ctx, orderID, events.TypeOrderFailed, key+"\x00"+in.ID, events.OrderFailed{
		OrderID: orderID, Shop: shop, Step: step, Message: cause.Error(), Attempts: in.Attempts,
	})
}

var _ streams.Handler = (*Workflow)(nil)

// shopOfData is the (normalised) shop an input names.
func shopOfData(data any) string { return ids.ShopAlias(events.ShopOf(data)) }

// identity refuses a stored state that belongs to another order: the
// input cannot be processed against it.
func identity(o *order.Order, shop, orderID string) error {
	if err := o.CheckIdentity(shop, orderID); err != nil {
		return unprocessable(err)
	}
	return nil
}
