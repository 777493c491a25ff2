package streams

import (
	"context"
	"errors"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/events"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-retry"
)

// Stream, bucket and consumer names of the contract.
const (
	StreamIn        = "SMARTRENT_IN"
	StreamCallbacks = "SMARTRENT_CALLBACKS"
	StreamOut       = "SMARTRENT_OUT"
	StreamDLQ       = "SMARTRENT_DLQ"
	BucketOrders    = "smartrent_orders"
	BucketOpen      = "smartrent_open"

	ConsumerOrders    = "bridge-orders"
	ConsumerDevices   = "bridge-devices"
	ConsumerCallbacks = "bridge-callbacks"
)

// Topology is the JetStream layout both binaries create at start-up. Its
// zero value is not useful; start from [DefaultTopology] and override what
// the operator set.
type Topology struct {
	Replicas  int           // 1 for one server, 3 for a cluster
	InMaxAge  time.Duration // SMARTRENT_IN retention (replay and audit)
	OutMaxAge time.Duration // SMARTRENT_OUT retention
	DLQMaxAge time.Duration // SMARTRENT_DLQ retention
	MaxBytes  int64         // per stream but SMARTRENT_CALLBACKS; -1 = unlimited
	// SMARTRENT_CALLBACKS is bounded (its writers are on the internet):
	// when full, its oldest callbacks go.
	CallbacksMaxAge   time.Duration
	CallbacksMaxBytes int64
	DuplicateWindow   time.Duration // Nats-Msg-Id de-duplication window
	MaxDeliver        int           // deliveries of one message before it is dead-lettered
	AckWait           time.Duration // time a consumer may hold a message without acking or progress
	MaxAckPending     int           // messages in flight per consumer, across all bridges
}

// DefaultTopology is what the contract specifies.
func DefaultTopology() Topology {
	return Topology{
		Replicas:        1,
		InMaxAge:        7 * 24 * time.Hour,
		OutMaxAge:       7 * 24 * time.Hour,
		DLQMaxAge:       30 * 24 * time.Hour,
		MaxBytes:        -1,
		DuplicateWindow: 2 * time.Minute,
		// 1 GiB holds 16,000 callbacks of the largest size the ingress
		// accepts (64 KiB), and millions of real ones (about 1 KiB).
		CallbacksMaxAge:   7 * 24 * time.Hour,
		CallbacksMaxBytes: 1 << 30,
		MaxDeliver:        20,
		AckWait:           30 * time.Second,
		MaxAckPending:     1024,
	}
}

// Validate reports settings that JetStream would refuse or that break the
// contract.
func (t Topology) Validate() error {
	switch {
	case t.Replicas != 1 && t.Replicas != 3 && t.Replicas != 5:
		return fmt.Errorf("replicas must be 1, 3 or 5, got %d", t.Replicas)
	case t.DuplicateWindow < 2*time.Minute:
		return fmt.Errorf("duplicate window must be at least 2m, got %s", t.DuplicateWindow)
	case t.InMaxAge < t.DuplicateWindow || t.OutMaxAge < t.DuplicateWindow || t.DLQMaxAge < t.DuplicateWindow || t.CallbacksMaxAge < t.DuplicateWindow:
		return errors.New("stream max age must not be shorter than the duplicate window")
	case t.CallbacksMaxBytes < minCallbacksBytes:
		return fmt.Errorf("callbacks stream size must be at least %d bytes (it is always bounded), got %d", minCallbacksBytes, t.CallbacksMaxBytes)
	case t.MaxDeliver < 2:
		return fmt.Errorf("max deliver must be at least 2, got %d", t.MaxDeliver)
	case t.AckWait < time.Second:
		return fmt.Errorf("ack wait must be at least 1s, got %s", t.AckWait)
	case t.MaxAckPending < 1:
		return fmt.Errorf("max ack pending must be positive, got %d", t.MaxAckPending)
	}
	return nil
}

// maxMsgSize is the largest event a stream stores. A callbacks stream
// must hold at least one.
const (
	maxMsgSize        = 1 << 20
	minCallbacksBytes = maxMsgSize
)

// InputSubjects are the subjects of SMARTRENT_IN: the shop systems' events.
var InputSubjects = []string{events.SubjectOrderPlaced, events.SubjectDeviceShipped, events.SubjectDeviceDelivered}

// Streams returns the four stream definitions, SMARTRENT_IN before
// SMARTRENT_CALLBACKS (an older SMARTRENT_IN took every smartrent.in.>
// subject: it must give up the callbacks' before their stream can exist).
// Discard is DiscardNew but for callbacks: a full stream refuses new
// messages (the publisher sees an error) instead of silently dropping old
// ones. SMARTRENT_CALLBACKS, written by the internet-facing ingress, drops
// its oldest callbacks instead: they are hints (the reconciler re-reads
// every open order without them), and a flood of valid-token POSTs must
// neither fill the server nor refuse the next real callback. Its own
// stream keeps that flood away from the shop's order intake.
func (t Topology) Streams() []jetstream.StreamConfig {
	mk := func(name, desc string, subjects []string, age time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: subjects,
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
			Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: age, MaxBytes: t.MaxBytes, MaxMsgs: -1, MaxMsgsPerSubject: -1, MaxMsgSize: maxMsgSize,
			Duplicates: t.DuplicateWindow,
		}
	}
	callbacks := mk(StreamCallbacks, "Smart Rent: Inbank callbacks stored by the webhook ingress, read by the bridge; bounded, oldest dropped first", []string{events.SubjectCallbackReceived}, t.CallbacksMaxAge)
	callbacks.MaxBytes, callbacks.Discard = t.CallbacksMaxBytes, jetstream.DiscardOld
	return []jetstream.StreamConfig{
		mk(StreamIn, "Smart Rent: events from shop systems, read by the bridge", slices.Clone(InputSubjects), t.InMaxAge),
		callbacks,
		mk(StreamOut, "Smart Rent: session and contract state events published by the bridge", []string{"smartrent.out.>"}, t.OutMaxAge),
		mk(StreamDLQ, "Smart Rent: dead letters, the original message with Smartrent-Dlq-* headers", []string{events.SubjectDLQPrefix + ">"}, t.DLQMaxAge),
	}
}

// markerTTL is how long the buckets keep the markers of removed keys
// (expired orders, retired index entries, leases). Per-key TTLs need
// nats-server 2.11 or later.
const markerTTL = time.Hour

// OrdersBucket returns the KV bucket definition for order state. History
// 1: a revision that held customer data (before the session existed) does
// not outlive the write that dropped it. Finished orders expire by a
// per-key TTL (ORDER_RETENTION).
func (t Topology) OrdersBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketOrders,
		Description:    "Smart Rent: one key per order, changed only by compare-and-set",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       t.Replicas,
		LimitMarkerTTL: markerTTL,
	}
}

// OpenBucket returns the definition of the index of unfinished orders
// (one key per order that may still need Inbank) and the reconciler's
// lease: reconciliation reads what is open, not every order ever.
func (t Topology) OpenBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketOpen,
		Description:    "Smart Rent: the orders that may still need Inbank, and the reconciler's lease",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       t.Replicas,
		LimitMarkerTTL: markerTTL,
	}
}

// DurableConsumer is one of the bridge's durable consumers and the stream
// it reads.
type DurableConsumer struct {
	Stream string
	jetstream.ConsumerConfig
}

// Consumers returns the bridge's durable pull consumers: two on
// SMARTRENT_IN, one on SMARTRENT_CALLBACKS. Retries are spaced by the bridge with NakWithDelay, and a message whose
// handler died comes again after AckWait. They have no BackOff on purpose:
// nats-server measures a NAK's delay against BackOff[n] instead of
// AckWait, which stretched every delay from the second delivery on by
// BackOff[n] − AckWait (2 s became 32 s with AckWait 30 s).
func (t Topology) Consumers() []DurableConsumer {
	mk := func(stream, name, desc string, subjects ...string) DurableConsumer {
		return DurableConsumer{Stream: stream, ConsumerConfig: jetstream.ConsumerConfig{
			Durable: name, Description: desc, FilterSubjects: subjects,
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait: t.AckWait, MaxDeliver: t.MaxDeliver, MaxAckPending: t.MaxAckPending,
			Replicas: t.Replicas,
		}}
	}
	return []DurableConsumer{
		mk(StreamIn, ConsumerOrders, "Smart Rent bridge: order.placed", events.SubjectOrderPlaced),
		mk(StreamIn, ConsumerDevices, "Smart Rent bridge: device.shipped and device.delivered", events.SubjectDeviceShipped, events.SubjectDeviceDelivered),
		mk(StreamCallbacks, ConsumerCallbacks, "Smart Rent bridge: Inbank callbacks", events.SubjectCallbackReceived),
	}
}

// ErrIncompatible is returned when an existing stream, bucket or consumer
// cannot be changed to the definition (e.g. another storage type).
var ErrIncompatible = errors.New("existing definition is incompatible")

// ProvisionStreams creates or updates the streams. It is idempotent
// and safe to run from several processes at once.
func ProvisionStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, cfg := range t.Streams() {
		if err := createOrUpdateStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// JetStream error codes that mean the existing definition cannot become the
// wanted one (nats-server errors.json).
var incompatibleCodes = map[jetstream.ErrorCode]bool{
	10012: true, // consumer create error
	10052: true, // stream configuration invalid (e.g. storage type change)
	10058: true, // stream name in use with another configuration
	10065: true, // subjects overlap with another stream
	10069: true, // stream update error
	10074: true, // replicas > 1 on a single server
}

type setupReportKey struct{}

// WithSetupReport returns a context under which provisioning and
// verification call report each time a step must wait and be retried (the
// step, e.g. "stream SMARTRENT_IN", and why), so a binary can say in its
// log and /readyz what it waits for. Like net/http/httptrace, a hook for
// diagnostics rides in the context rather than in every signature.
func WithSetupReport(ctx context.Context, report func(step string, err error)) context.Context {
	return context.WithValue(ctx, setupReportKey{}, report)
}

// provisionBackoff spaces start-up retries while a cluster elects leaders
// or places peers; the caller's context bounds them.
func provisionBackoff() retry.Backoff {
	return retry.WithCappedDuration(time.Second, retry.WithJitterPercent(20, retry.NewExponential(50*time.Millisecond)))
}

// Await runs f, a set-up step of JetStream named what (e.g. "bucket
// smartrent_open"; every create-or-update of provisioning is one): each
// attempt with its own deadline, retried while it can pass by itself (no
// answer yet, no leader, not there yet, a concurrent creator winning the
// race) until ctx ends, each wait reported under WithSetupReport. A
// refusal of a definition ends it as ErrIncompatible.
func Await(ctx context.Context, what string, f func(context.Context) error) error {
	return AwaitWithin(ctx, what, requestAttempt, f)
}

// requestAttempt is how long one set-up request is awaited before it is
// sent again: a request sent before a cluster has a meta leader may
// never be answered.
const requestAttempt = 5 * time.Second

// AwaitWithin is Await for a step of many requests (a migration, a
// backfill), each attempt given attempt to finish. f must be safe to run
// again after an attempt that failed part way.
func AwaitWithin(ctx context.Context, what string, attempt time.Duration, f func(context.Context) error) error {
	var last error
	err := retry.Do(ctx, provisionBackoff(), func(ctx context.Context) error {
		// Each attempt has its own deadline (see requestAttempt).
		actx, cancel := context.WithTimeout(ctx, attempt)
		defer cancel()
		err := f(actx)
		if err == nil {
			return nil
		}
		last = err
		var apiErr *jetstream.APIError
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return retry.RetryableError(err)
		case errors.As(err, &apiErr) && incompatibleCodes[apiErr.ErrorCode]:
			return fmt.Errorf("%s: %w: %s (change or delete it with the nats CLI; see deploy/nats)", what, ErrIncompatible, apiErr.Description)
		case errors.Is(err, context.Canceled), errors.Is(err, ErrIncompatible):
			return fmt.Errorf("%s: %w", what, err)
		}
		// Missing (PROVISION=false: a GitOps controller may create it
		// after the binaries start), no leader yet, no peers: wait.
		if report, ok := ctx.Value(setupReportKey{}).(func(string, error)); ok {
			report(what, err)
		}
		return retry.RetryableError(fmt.Errorf("%s: %w", what, err))
	})
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("%s: gave up (%w); last error: %v", what, ctx.Err(), last)
	}
	return err
}

func createOrUpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	return Await(ctx, "stream "+cfg.Name, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
}

// ProvisionBridge creates or updates everything the bridge needs: the
// streams, the orders bucket and the durable consumers.
func ProvisionBridge(ctx context.Context, js jetstream.JetStream, t Topology) (jetstream.KeyValue, error) {
	if err := ProvisionStreams(ctx, js, t); err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	for _, b := range []jetstream.KeyValueConfig{t.OpenBucket(), t.OrdersBucket()} {
		err := Await(ctx, "bucket "+b.Bucket, func(ctx context.Context) error {
			var err error
			kv, err = js.CreateOrUpdateKeyValue(ctx, b)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	for _, c := range t.Consumers() {
		err := Await(ctx, "consumer "+c.Durable, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.ConsumerConfig)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return kv, nil
}

// ErrMissing is a stream, bucket or consumer that does not exist while the
// binary may not create it (PROVISION=false).
var ErrMissing = errors.New("does not exist")

// VerifyStreams checks, without changing anything, that the named streams
// (all when none is named) exist with the definition's subjects,
// retention and duplicate window: for binaries whose NATS user may not
// create streams (PROVISION=false), run against a topology an operator
// manages.
func VerifyStreams(ctx context.Context, js jetstream.JetStream, t Topology, names ...string) error {
	for _, want := range t.Streams() {
		if len(names) > 0 && !slices.Contains(names, want.Name) {
			continue
		}
		err := Await(ctx, "stream "+want.Name, func(ctx context.Context) error {
			s, err := js.Stream(ctx, want.Name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("%w (PROVISION=false: create it as deploy/nats/README.md shows)", ErrMissing)
			}
			if err != nil {
				return err
			}
			got := s.CachedInfo().Config
			switch {
			case !slices.Equal(got.Subjects, want.Subjects):
				return fmt.Errorf("%w: subjects %v, want %v", ErrIncompatible, got.Subjects, want.Subjects)
			case got.Retention != want.Retention:
				return fmt.Errorf("%w: retention %v, want %v", ErrIncompatible, got.Retention, want.Retention)
			case got.Duplicates < want.Duplicates:
				return fmt.Errorf("%w: duplicate window %v, want at least %v", ErrIncompatible, got.Duplicates, want.Duplicates)
			case want.Discard == jetstream.DiscardOld && (got.MaxBytes <= 0 || got.Discard != jetstream.DiscardOld):
				return fmt.Errorf("%w: max bytes %d, discard %v; want a size limit and discard old (it is written from the internet)", ErrIncompatible, got.MaxBytes, got.Discard)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// VerifyBridge is [ProvisionBridge] for PROVISION=false: it checks the
// streams, the orders bucket and the bridge's consumers (filters, ack
// wait, max deliver, and no BackOff, which would stretch every retry) and
// returns the bucket.
func VerifyBridge(ctx context.Context, js jetstream.JetStream, t Topology) (jetstream.KeyValue, error) {
	if err := VerifyStreams(ctx, js, t); err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	for _, b := range []jetstream.KeyValueConfig{t.OpenBucket(), t.OrdersBucket()} {
		err := Await(ctx, "bucket "+b.Bucket, func(ctx context.Context) error {
			var err error
			kv, err = js.KeyValue(ctx, b.Bucket)
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return fmt.Errorf("%w (PROVISION=false: create it as deploy/nats/README.md shows)", ErrMissing)
			}
			if err != nil {
				return err
			}
			if st, err := kv.Status(ctx); err == nil && (st.History() != 1 || st.LimitMarkerTTL() == 0) {
				return fmt.Errorf("%w: history %d and limit marker TTL %v, want history 1 and a limit marker TTL (per-key TTLs)", ErrIncompatible, st.History(), st.LimitMarkerTTL())
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, want := range t.Consumers() {
		err := Await(ctx, "consumer "+want.Durable, func(ctx context.Context) error {
			c, err := js.Consumer(ctx, want.Stream, want.Durable)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("%w (PROVISION=false: create it as deploy/nats/README.md shows)", ErrMissing)
			}
			if err != nil {
				return err
			}
			got := c.CachedInfo().Config
			switch {
			case !slices.Equal(got.FilterSubjects, want.FilterSubjects) && !(len(want.FilterSubjects) == 1 && got.FilterSubject == want.FilterSubjects[0]):
				return fmt.Errorf("%w: filter %v, want %v", ErrIncompatible, got.FilterSubjects, want.FilterSubjects)
			case got.AckPolicy != want.AckPolicy || got.AckWait != want.AckWait || got.MaxDeliver != want.MaxDeliver:
				return fmt.Errorf("%w: ack %v/%v/%d, want %v/%v/%d (ACK_WAIT, MAX_DELIVER must match the consumer)", ErrIncompatible,
					got.AckPolicy, got.AckWait, got.MaxDeliver, want.AckPolicy, want.AckWait, want.MaxDeliver)
			case len(got.BackOff) > 0:
				return fmt.Errorf("%w: BackOff %v stretches every retry delay; remove it", ErrIncompatible, got.BackOff)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return kv, nil
}
