package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamMessages reads every message a stream holds, in order, skipping
// deleted ones. It is for operators and checks (a DLQ listing, a soak's
// tally), not for consuming: it makes one request per message.
func StreamMessages(ctx context.Context, js jetstream.JetStream, stream string) (jetstream.Stream, []*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("stream %s message %d: %w", stream, seq, err)
		}
		out = append(out, m)
	}
	return s, out, nil
}
