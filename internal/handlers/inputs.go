package handlers

import (
	"context"
	"errors"
	"fmt"
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
		err = w.device(ctx, in, ids.ShopAlias(data.Shop), data.OrderID, order.Shipment{
			Input: in.Kind, At: w.timeOr(data.ShippedAt), Carrier: data.Carrier, Tracking: data.TrackingNumber, Identifiers: data.AssetIdentifiers,
		})
	case *events.DeviceDelivered:
		err = w.device(ctx, in, ids.ShopAlias(data.Shop), data.OrderID, order.Shipment{
			Input: in.Kind, At: w.timeOr(data.DeliveredAt), Identifiers: data.AssetIdentifiers,
		})
	case *events.CallbackReceived:
		err = w.callback(ctx, in, data)
	default:
		err = unprocessable(fmt.Errorf("no handler for %s", env.Event.Type()))
	}
	return AsConsumerError(err)
}

// timeOr is t in UTC, or now when the event gave none.
func (w *Workflow) timeOr(t *time.Time) time.Time {
	if t == nil {
		return w.now()
	}
	return t.UTC()
}

// orderPlaced makes a new order's first move straight away: its first
// write creates it (with the session's claim, or rejected), so a new
// order costs no write of its own.
func (w *Workflow) orderPlaced(ctx context.Context, in Input, p *events.OrderPlaced) error {
	alias := ids.ShopAlias(p.Shop)
	product := p.ProductCode
	if sh, ok := w.shops[alias]; ok && product == "" {
		product = sh.productCode
	}
	o := order.New(p, alias, product, traceParentFrom(ctx), w.now())
	key := o.Key()
	published := &publishedIDs{}
	ctx = indexingPublications(ctx, published)
	err := w.advance(ctx, key, false, &o)
	if errors.Is(err, orderstore.ErrExists) {
		err = w.placedAgain(ctx, in, p, alias, key)
	}
	// The open index gets the order after its Advance, whatever became of
	// it, and the input is acknowledged only then: an order that is not
	// final is always in the index or still has its order.placed to come
	// again (which writes the entry again).
	if ierr := w.index(ctx, key, published.list()); ierr != nil {
		return fmt.Errorf("index order %s: %w", p.OrderID, ierr)
	}
	return err
}

// placedAgain records an order.placed for an order already stored.
func (w *Workflow) placedAgain(ctx context.Context, in Input, p *events.OrderPlaced, alias, key string) error {
	_, again, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		if err := identity(o, alias, p.OrderID); err != nil {
			return false, err
		}
		return o.PlacedAgain(p, in.Attempts > 1, w.now())
	})
	switch {
	case errors.Is(err, order.ErrEndedFailed):
		return unprocessable(err)
	case err != nil:
		return err
	case !again:
		w.log.InfoContext(ctx, "order.placed for a known order; no new session", "order_id", p.OrderID)
	}
	return w.Advance(ctx, key, false)
}

// index adds an order to the open index (none in tests without one) with
// the ids of its events published and still in its stored outbox. An
// order at rest in a final state with nothing left to publish needs no
// entry: nothing more happens to it.
func (w *Workflow) index(ctx context.Context, key string, published []string) error {
	if w.cfg.Open == nil {
		return nil
	}
	if len(published) == 0 {
		if o, _, err := w.cfg.Store.Load(ctx, key); err == nil && o.Settled(w.now()) {
			return nil
		}
	}
	return w.cfg.Open.Add(ctx, key, published)
}

// device records a shipment or delivery. An order that has not arrived
// yet is waited for; a refused one is rejected without touching the
// order.
func (w *Workflow) device(ctx context.Context, in Input, shop, orderID string, s order.Shipment) error {
	key := order.StoreKey(shop, orderID)
	var recorded order.ShipmentRecorded
	_, _, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		if err := identity(o, shop, orderID); err != nil {
			return false, err
		}
		recorded = o.RecordShipment(s, w.now())
		return recorded.Changed, nil
	})
	switch {
	case errors.Is(err, orderstore.ErrNotFound):
		if err := w.awaitUnknown(in, orderID); err != nil {
			return err
		}
		return w.rejectInput(ctx, in, shop, orderID, order.NewRejection(events.ReasonOrderUnknown, "no order.placed for order %s", orderID))
	case err != nil:
		return err
	case recorded.Rejection != nil:
		return w.rejectInput(ctx, in, shop, orderID, recorded.Rejection)
	case !recorded.Changed:
		return nil // late or repeated: the order is done
	case recorded.AssignedKept:
		w.log.WarnContext(ctx, "identifiers differ from those already assigned; keeping the assigned ones", "order_id", orderID, "input", in.Kind)
	}
	return w.Advance(ctx, key, false)
}

// awaitUnknown waits for an order that is not stored: its order.placed
// may still be on its way (the shop's systems publish on three subjects).
// It returns nil once UnknownOrderWait has passed since the input was
// stored.
func (w *Workflow) awaitUnknown(in Input, orderID string) error {
	if age := w.now().Sub(in.Published); age < w.cfg.UnknownOrderWait {
		return wait(min(2*time.Second, w.cfg.UnknownOrderWait-age), "order %s not known yet", orderID)
	}
	return nil
}

// callback is a hint: it marks the order for a fresh read of the session.
// A read that began after the callback was stored has answered it already.
func (w *Workflow) callback(ctx context.Context, in Input, c *events.CallbackReceived) error {
	// The callback token named the shop (the ingress put it in the event):
	// the order is looked up under that shop only.
	shop := ids.ShopAlias(c.Shop)
	key := order.StoreKey(shop, c.OrderID)
	answered := false
	_, _, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		if err := identity(o, shop, c.OrderID); err != nil {
			return false, err
		}
		var requested bool
		requested, answered = o.RequestRefresh(in.Published, traceParentFrom(ctx))
		return requested, nil
	})
	switch {
	case errors.Is(err, orderstore.ErrNotFound):
		if err := w.awaitUnknown(in, c.OrderID); err != nil {
			return err
		}
		w.log.WarnContext(ctx, "callback for an order this bridge never saw; ignored", "order_id", c.OrderID)
		return nil
	case err != nil:
		return err
	case answered:
		return nil
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
	e, err := w.newEvent(orderID, typ, order.EventID(orderID, typ, discriminator), data, traceParentFrom(ctx))
	if err != nil {
		return err
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
		o := order.NewInvalid(de.OrderID, shop, w.now())
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
		_, failed, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
			return o.Fail(step, cause, in.Attempts, w.now()), nil
		})
		switch {
		case err != nil && !errors.Is(err, orderstore.ErrNotFound):
			return err
		case failed:
			return w.Advance(ctx, key, false)
		case err == nil:
			return nil // already final: its event is out or in the outbox
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
