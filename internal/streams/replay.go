package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/events"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// isInput reports whether subject is one a bridge consumer reads: the
// only subjects a dead letter may be replayed to.
func isInput(subject string) bool {
	for _, c := range DefaultTopology().Consumers() {
		if slices.Contains(c.FilterSubjects, subject) {
			return true
		}
	}
	return false
}

// ErrNotFound is a dead letter that is not (or no longer) in the DLQ.
var ErrNotFound = errors.New("not found")

// ErrNotReplayable is a dead letter that is not an input of the bridge.
var ErrNotReplayable = errors.New("not a dead letter of an input")

// ReplayDeadLetter publishes the dead letter at seq in SMARTRENT_DLQ again
// on its original subject, as a new event (a new id: the original's may
// still be in the input stream's duplicate window, or was handled
// already), then removes it from the DLQ. It returns the subject. Only the
// bridge calls it (smartrentctl asks the bridge): an operator's credential
// replays what the bridge itself dead-lettered, and cannot publish inputs.
func ReplayDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (string, error) {
	s, err := js.Stream(ctx, StreamDLQ)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", StreamDLQ, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("dead letter %d: %w", seq, err)
	}
	subject, ok := strings.CutPrefix(m.Subject, events.SubjectDLQPrefix)
	// SMARTRENT_IN held callbacks too before SMARTRENT_CALLBACKS existed:
	// a dead letter names the stream it came from, not the one its
	// subject is stored in now.
	if from := m.Header.Get(HeaderDLQStream); !ok || !isInput(subject) || (from != StreamIn && from != StreamCallbacks) {
		return "", fmt.Errorf("dead letter %d on %s: %w", seq, m.Subject, ErrNotReplayable)
	}
	id := uuid.NewString()
	out := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: m.Data}
	for k, v := range m.Header {
		if strings.HasPrefix(k, "Smartrent-Dlq-") || k == jetstream.MsgIDHeader {
			continue
		}
		out.Header[k] = v
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(m.Data, &ev) == nil && ev["specversion"] != nil {
		ev["id"], _ = json.Marshal(id)
		out.Data, _ = json.Marshal(ev)
	}
	for k := range out.Header {
		if strings.EqualFold(k, "ce-id") {
			out.Header[k] = []string{id}
		}
	}
	out.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return subject, fmt.Errorf("publish: %w (the dead letter is kept)", err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		return subject, fmt.Errorf("published, but not removed from the DLQ: %w", err)
	}
	return subject, nil
}
