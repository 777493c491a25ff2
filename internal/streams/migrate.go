package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MoveLegacyCallbacks hands the callbacks that an earlier version stored
// in SMARTRENT_IN, and its bridges had not yet handled, to
// SMARTRENT_CALLBACKS, then removes the earlier callbacks consumer from
// SMARTRENT_IN. Each callback is republished with its Nats-Msg-Id before
// it is acknowledged on the old consumer, so a crash in between moves it
// twice and stores it once. Callbacks an older bridge still holds are
// waited for: that bridge handles them, or they come back to the old
// consumer and are moved. Several bridges may run it at once. It returns
// how many callbacks it moved; with nothing to move it returns at once.
func MoveLegacyCallbacks(ctx context.Context, js jetstream.JetStream) (int, error) {
	moved := 0
	for {
		old, err := js.Consumer(ctx, StreamIn, ConsumerCallbacks)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return moved, nil
		}
		if err != nil {
			return moved, fmt.Errorf("callbacks consumer of %s: %w", StreamIn, err)
		}
		if info := old.CachedInfo(); info.NumPending == 0 && info.NumAckPending == 0 {
			err := js.DeleteConsumer(ctx, StreamIn, ConsumerCallbacks)
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return moved, fmt.Errorf("remove the callbacks consumer of %s: %w", StreamIn, err)
			}
			return moved, nil
		}
		batch, err := old.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return moved, fmt.Errorf("fetch from the callbacks consumer of %s: %w", StreamIn, err)
		}
		for m := range batch.Messages() {
			out := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			if _, err := js.PublishMsg(ctx, out); err != nil {
				return moved, fmt.Errorf("move a callback to %s: %w", StreamCallbacks, err)
			}
			if err := m.DoubleAck(ctx); err != nil {
				return moved, fmt.Errorf("moved a callback, but not acknowledged on %s: %w", StreamIn, err)
			}
			moved++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			return moved, fmt.Errorf("fetch from the callbacks consumer of %s: %w", StreamIn, err)
		}
		if ctx.Err() != nil {
			return moved, ctx.Err()
		}
	}
}
