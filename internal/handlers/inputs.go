package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// Handle records one input event in its order and advances the order. It
// implements [events.Handler].
func (w *Workflow) Handle(ctx context.Context, env events.Envelope, d events.Delivery) error {
	tp := telemetry.TraceParent(ctx) // the consumer's span, when tracing is on
	if tp == "" {
		tp = events.TraceParent(env.Event)
	}
	ctx = withTraceParent(ctx, tp)
	var err error
	switch data := env.Data.(type) {
	case *events.OrderPlaced:
		err = w.orderPlaced(ctx, data)
	case *events.DeviceShipped:
		err = w.device(ctx, env, d, ids.ShopAlias(data.Shop), data.OrderID, events.InputDeviceShipped, data.AssetIdentifiers, func(o *Order) {
			at := w.now()
			if data.ShippedAt != nil {
				at = data.ShippedAt.UTC()
			}
			o.ShippedAt, o.Carrier, o.Tracking = &at, data.Carrier, data.TrackingNumber
		})
	case *events.DeviceDelivered:
		err = w.device(ctx, env, d, ids.ShopAlias(data.Shop), data.OrderID, events.InputDeviceDelivered, data.AssetIdentifiers, func(o *Order) {
			at := w.now()
			if data.DeliveredAt != nil {
				at = data.DeliveredAt.UTC()
			}
			o.DeliveredAt = &at
		})
	case *events.CallbackReceived:
		err = w.callback(ctx, d, data)
	default:
		err = unprocessable(fmt.Errorf("no handler for %s", env.Event.Type()))
	}
	return AsConsumerError(err)
}

func (w *Workflow) orderPlaced(ctx context.Context, p *events.OrderPlaced) error {
	now := w.now()
	alias := ids.ShopAlias(p.Shop)
	product := p.ProductCode
	sh, shopErr := w.shopOf(alias)
	if product == "" && sh != nil {
		product = sh.productCode
	}
	o := Order{
		OrderID: p.OrderID, Shop: alias, State: StateNew, CreatedAt: now, UpdatedAt: now,
		Placed: p, ProductCode: product, Period: p.Period, TraceParent: traceParentFrom(ctx),
	}
	o.note(now, "order placed")
	switch {
	case shopErr != nil:
		w.rejectOrder(&o, reject(events.ReasonInvalidOrder, "%v", shopErr))
	case product == "":
		w.rejectOrder(&o, reject(events.ReasonInvalidOrder, "productCode is missing and no default product code is configured"))
	}
	key := o.Key()
	if w.cfg.Open != nil {
		// Indexed first: a crash before the order exists leaves an entry
		// that reconciliation retires, never an order it cannot see.
		if err := w.cfg.Open.Add(ctx, key); err != nil {
			return err
		}
	}
	_, err := w.cfg.Store.Create(ctx, key, o)
	switch {
	case errors.Is(err, events.ErrExists):
		// A second order.placed makes no new session. One exception: an
		// order that failed before it had a session is tried again, which
		// is what an operator's `dlq replay` of its order.placed means.
		_, err = w.update(ctx, key, func(o *Order) error {
			if err := o.is(alias, p.OrderID); err != nil {
				return err
			}
			if o.State != StateFailed || o.SessionUUID != "" {
				return errSkip
			}
			o.State, o.Failure, o.Placed = StateNew, "", p
			o.note(w.now(), "order placed again after a failure")
			return nil
		})
		if errors.Is(err, errSkip) {
			w.log.InfoContext(ctx, "order.placed for a known order; no new session", "order_id", p.OrderID)
		} else if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		w.cfg.Metrics.state(o.State)
		return w.advanceWritten(ctx, key)
	}
	return w.Advance(ctx, key, false)
}

// device records a shipment or delivery. An order that has not arrived
// yet is waited for; a wrong identifier is rejected without touching the
// order; a late or repeated event is a no-op.
func (w *Workflow) device(ctx context.Context, env events.Envelope, d events.Delivery, shop, orderID, input string, ids []events.AssetIdentifier, apply func(*Order)) error {
	key := StoreKey(shop, orderID)
	o, _, err := w.cfg.Store.Load(ctx, key)
	if err == nil {
		err = o.is(shop, orderID)
	}
	if errors.Is(err, events.ErrNotFound) {
		if age := w.now().Sub(d.Published); age < w.cfg.UnknownOrderWait {
			return wait(min(2*time.Second, w.cfg.UnknownOrderWait-age), "order %s not known yet", orderID)
		}
		return w.rejectInput(ctx, env, shop, orderID, input, reject(events.ReasonOrderUnknown, "no order.placed for order %s", orderID))
	}
	if err != nil {
		return err
	}
	switch {
	case o.State == StateActivated:
		return nil // late or repeated: the order is done
	case Final(o.State):
		return w.rejectInput(ctx, env, shop, orderID, input, reject(events.ReasonOrderNotActive, "order %s is %s", orderID, o.State))
	}
	if len(ids) > 0 {
		if r := CheckIdentifiers(ids, o.IdentifierTypes); r != nil {
			return w.rejectInput(ctx, env, shop, orderID, input, r)
		}
	}
	_, err = w.update(ctx, key, func(o *Order) error {
		apply(o)
		if len(ids) > 0 {
			switch {
			case len(o.IdentifiersAssigned) > 0 && !slices.Equal(o.IdentifiersAssigned, ids):
				w.log.WarnContext(ctx, "identifiers differ from those already assigned; keeping the assigned ones", "order_id", orderID, "input", input)
			case len(o.IdentifiersAssigned) == 0:
				o.Identifiers = slices.Clone(ids)
			}
		}
		o.note(w.now(), input)
		return nil
	})
	if err != nil {
		return err
	}
	return w.Advance(ctx, key, false)
}

// callback is a hint: it marks the order for a fresh read of the session.
func (w *Workflow) callback(ctx context.Context, d events.Delivery, c *events.CallbackReceived) error {
	// The callback token named the shop (the ingress put it in the event):
	// the order is looked up under that shop only.
	shop := ids.ShopAlias(c.Shop)
	key := StoreKey(shop, c.OrderID)
	_, err := w.update(ctx, key, func(o *Order) error {
		if err := o.is(shop, c.OrderID); err != nil {
			return err
		}
		if (Final(o.State) && o.State != StateActivated) || o.RefreshRequested {
			return errSkip
		}
		o.RefreshRequested = true
		return nil
	})
	switch {
	case errors.Is(err, events.ErrNotFound):
		if age := w.now().Sub(d.Published); age < w.cfg.UnknownOrderWait {
			return wait(min(2*time.Second, w.cfg.UnknownOrderWait-age), "order %s not known yet", c.OrderID)
		}
		w.log.WarnContext(ctx, "callback for an order this bridge never saw; ignored", "order_id", c.OrderID)
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
func (w *Workflow) rejectInput(ctx context.Context, env events.Envelope, shop, orderID, input string, r *Rejection) error {
	w.log.WarnContext(ctx, "input rejected", "order_id", orderID, "input", input, "reason", r.Reason) // the context names the shop
	return w.publishNow(ctx, orderID, events.TypeOrderRejected, StoreKey(shop, orderID)+"\x00"+env.Event.ID(), events.OrderRejected{
		OrderID: orderID, Shop: shop, InputType: input, Reason: r.Reason, Message: r.Message,
	})
}

func (w *Workflow) publishNow(ctx context.Context, orderID, typ, discriminator string, data any) error {
	e, err := w.cfg.Codec.New(w.cfg.Source, typ, orderID, data)
	if err != nil {
		return err
	}
	e.SetID(eventID(orderID, typ, discriminator))
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
// [events.Handler].
func (w *Workflow) Invalid(ctx context.Context, d events.Delivery, de *events.DecodeError) error {
	input := inputType(d.Subject)
	if de.OrderID == "" || input == "" {
		return nil // nothing to tell: the dead letter is the record
	}
	shop := ids.ShopAlias(de.Shop)
	if input == events.InputOrderPlaced {
		now := w.now()
		o := Order{OrderID: de.OrderID, Shop: shop, State: StateRejected, CreatedAt: now, UpdatedAt: now}
		o.note(now, "rejected: INVALID_ORDER")
		if _, err := w.cfg.Store.Create(ctx, o.Key(), o); err != nil && !errors.Is(err, events.ErrExists) {
			return err
		}
	}
	return w.publishNow(ctx, de.OrderID, events.TypeOrderRejected, fmt.Sprintf("%s-%d", d.Stream, d.StreamSeq), events.OrderRejected{
		OrderID: de.OrderID, Shop: shop, InputType: input, Reason: events.ReasonInvalidOrder, Message: de.Err.Error(),
	})
}

// GiveUp reports an input that failed permanently or ran out of
// deliveries with order.failed (once: the order keeps it in its state).
// It implements [events.Handler].
func (w *Workflow) GiveUp(ctx context.Context, env events.Envelope, d events.Delivery, cause error) error {
	orderID := env.OrderID()
	shop := shopOfData(env.Data)
	key := StoreKey(shop, orderID)
	step := "handle_" + inputType(d.Subject)
	var se *StepError
	if errors.As(cause, &se) {
		step = se.Step
	}
	if env.Event.Type() == events.TypeOrderPlaced {
		_, err := w.update(ctx, key, func(o *Order) error {
			if Final(o.State) {
				return errSkip
			}
			w.markFailed(o, step, cause, int(d.NumDelivered))
			return nil
		})
		switch {
		case errors.Is(err, errSkip):
			return nil // already final: its event is out or in the outbox
		case err != nil && !errors.Is(err, events.ErrNotFound):
			return err
		case err == nil:
			return w.Advance(ctx, key, false)
		}
	}
	return w.publishNow(ctx, orderID, events.TypeOrderFailed, key+"\x00"+env.Event.ID(), events.OrderFailed{
		OrderID: orderID, Shop: shop, Step: step, Message: cause.Error(), Attempts: int(d.NumDelivered),
	})
}

var _ events.Handler = (*Workflow)(nil)

// shopOfData is the (normalised) shop an input names.
func shopOfData(data any) string { return ids.ShopAlias(events.ShopOf(data)) }
