package streams_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// earlierLayout creates SMARTRENT_IN and its callbacks consumer as the
// version before SMARTRENT_CALLBACKS did (every smartrent.in.> subject in
// one stream), with ackWait on the consumer.
func earlierLayout(t *testing.T, js jetstream.JetStream, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	ctx := context.Background()
	in := streams.DefaultTopology().Streams()[0]
	in.Subjects = []string{"smartrent.in.>"}
	if _, err := js.CreateStream(ctx, in); err != nil {
		t.Fatal(err)
	}
	cfg := streams.DefaultTopology().Consumers()[2].ConsumerConfig
	cfg.AckWait = ackWait
	c, err := js.CreateConsumer(ctx, streams.StreamIn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func publishCallback(t *testing.T, js jetstream.JetStream, id string) {
	t.Helper()
	msg := &nats.Msg{Subject: events.SubjectCallbackReceived, Header: nats.Header{}, Data: []byte(`{"id":"` + id + `"}`)}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeMovesUnhandledCallbacks: an earlier version's SMARTRENT_IN
// holds five callbacks; its bridge handled two and holds one unacked.
// Start-up narrows SMARTRENT_IN and creates SMARTRENT_CALLBACKS; the move
// hands the three unhandled callbacks over (the held one after it comes
// back), each once and with its id, and removes the old consumer; running
// it again moves nothing.
func TestUpgradeMovesUnhandledCallbacks(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := earlierLayout(t, js, time.Second)
	for i := range 5 {
		publishCallback(t, js, fmt.Sprintf("cb-%d", i))
	}
	batch, err := old.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 3 {
		t.Fatalf("fetched %d, want 3", len(got))
	}
	for _, m := range got[:2] {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	} // got[2] stays held by the "older bridge" until its ack wait passes

	topo := streams.DefaultTopology()
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatalf("start-up on the earlier layout: %v", err)
	}
	moved, err := streams.MoveLegacyCallbacks(ctx, js)
	if err != nil || moved != 3 {
		t.Fatalf("moved %d (%v), want 3", moved, err)
	}
	if _, err := js.Consumer(ctx, streams.StreamIn, streams.ConsumerCallbacks); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the callbacks consumer of SMARTRENT_IN is still there: %v", err)
	}
	s, err := js.Stream(ctx, streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	if len(ids) != 3 || ids["cb-2"] != 1 || ids["cb-3"] != 1 || ids["cb-4"] != 1 {
		t.Errorf("SMARTRENT_CALLBACKS holds %v, want cb-2, cb-3 and cb-4 once each", ids)
	}
	if again, err := streams.MoveLegacyCallbacks(ctx, js); err != nil || again != 0 {
		t.Errorf("second run moved %d (%v)", again, err)
	}
	// New callbacks now land in SMARTRENT_CALLBACKS, shop events in SMARTRENT_IN.
	publishCallback(t, js, "cb-new")
	in, _ := js.Stream(ctx, streams.StreamIn)
	info, _ := in.Info(ctx)
	if info.State.Msgs != 5 || !slices.Equal(info.Config.Subjects, streams.InputSubjects) {
		t.Errorf("SMARTRENT_IN after the upgrade: %d messages, subjects %v", info.State.Msgs, info.Config.Subjects)
	}
}

// TestCallbacksStreamIsBounded: SMARTRENT_CALLBACKS keeps at most its
// size, dropping its oldest callbacks, and accepts every new one, while
// SMARTRENT_IN is untouched; a size below one message, or a stream made by
// hand without the bound, is refused.
func TestCallbacksStreamIsBounded(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	topo := streams.DefaultTopology()
	topo.CallbacksMaxBytes = 1 << 20
	if err := streams.ProvisionStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 60<<10)
	for i := range 50 { // 3 MB
		if _, err := js.Publish(ctx, events.SubjectCallbackReceived, []byte(body), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatalf("callback %d refused: %v", i, err)
		}
	}
	s, _ := js.Stream(ctx, streams.StreamCallbacks)
	info, _ := s.Info(ctx)
	if info.State.Bytes > 1<<20 || info.State.LastSeq != 50 || info.State.FirstSeq == 1 {
		t.Errorf("SMARTRENT_CALLBACKS: %d bytes, seq %d–%d; want at most 1 MiB, the newest kept", info.State.Bytes, info.State.FirstSeq, info.State.LastSeq)
	}
	if _, err := js.Publish(ctx, events.SubjectOrderPlaced, []byte("{}")); err != nil {
		t.Errorf("order intake refused: %v", err)
	}

	small := streams.DefaultTopology()
	small.CallbacksMaxBytes = 1 << 19
	if err := small.Validate(); err == nil {
		t.Error("a callbacks stream smaller than one message was accepted")
	}
	unbounded := topo.Streams()[1]
	unbounded.MaxBytes, unbounded.Discard = -1, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, unbounded); err != nil {
		t.Fatal(err)
	}
	if err := streams.VerifyStreams(ctx, js, topo, streams.StreamCallbacks); !errors.Is(err, streams.ErrIncompatible) {
		t.Errorf("an unbounded SMARTRENT_CALLBACKS passed the check: %v", err)
	}
}
