package streams

import (
	"context"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/events"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderMsgID is JetStream's de-duplication header.
const HeaderMsgID = jetstream.MsgIDHeader

// DefaultPublishTimeout bounds a publish whose context has no deadline.
const DefaultPublishTimeout = 5 * time.Second

// PubAck is JetStream's answer to a publish.
type PubAck struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // the server already had an event with this id in its duplicate window
}

// Publisher publishes contract events to JetStream and waits for the PubAck.
type Publisher struct {
	js          jetstream.Publisher
	codec       *events.Codec
	unvalidated bool
}

// NewPublisher returns a publisher that encodes with codec.
func NewPublisher(js jetstream.Publisher, codec *events.Codec) *Publisher {
	return &Publisher{js: js, codec: codec}
}

// TrustingData returns a publisher like p that does not validate events'
// data against their schemas before publishing (their attributes are still
// checked): it saves the validation's CPU, and an event our own code got
// wrong then reaches its consumers instead of failing the step.
func (p *Publisher) TrustingData() *Publisher {
	q := *p
	q.unvalidated = true
	return &q
}

// Publish validates and encodes e in structured mode, publishes it on its
// type's subject with Nats-Msg-Id = e.ID(), and returns only after the
// PubAck. An error means the event may not be stored: publishing the same
// event again is safe, the server stores it once.
func (p *Publisher) Publish(ctx context.Context, e event.Event) (PubAck, error) {
	subject, ok := events.SubjectOf(e.Type())
	if !ok {
		return PubAck{}, fmt.Errorf("publish: no subject for event type %q", e.Type())
	}
	encode := p.codec.Encode
	if p.unvalidated {
		encode = p.codec.EncodeUnvalidated
	}
	body, err := encode(e)
	if err != nil {
		return PubAck{}, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(events.HeaderContentType, events.ContentTypeStructured)
	msg.Header.Set(HeaderMsgID, e.ID())
	return p.PublishMsg(ctx, msg)
}

// PublishMsg publishes a prepared message (it must carry Nats-Msg-Id) and
// waits for the PubAck, adding [DefaultPublishTimeout] when ctx has no
// deadline.
func (p *Publisher) PublishMsg(ctx context.Context, msg *nats.Msg) (PubAck, error) {
	if msg.Header.Get(HeaderMsgID) == "" {
		return PubAck{}, fmt.Errorf("publish on %s: message has no %s", msg.Subject, HeaderMsgID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return PubAck{}, fmt.Errorf("publish on %s: %w", msg.Subject, err)
	}
	return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Codec returns the publisher's codec.
func (p *Publisher) Codec() *events.Codec { return p.codec }
