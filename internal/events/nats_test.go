package events_test

import (
	"bytes"
	"context"
	b64 "encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

func setup(t *testing.T) (*nats.Conn, jetstream.JetStream, *streams.Publisher) {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	if err := streams.ProvisionStreams(context.Background(), js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	return nc, js, streams.NewPublisher(js, events.NewCodec(schemaSet))
}

// TestRoundTripEveryType publishes each event type and reads it back three
// ways: as plain JSON with a core NATS subscriber, with the CloudEvents SDK,
// and with our decoder.
func TestRoundTripEveryType(t *testing.T) {
	nc, _, pub := setup(t)
	ctx := context.Background()
	codec := pub.Codec()
	for typ, data := range samples() {
		t.Run(typ, func(t *testing.T) {
			subject, _ := events.SubjectOf(typ)
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			e, err := codec.New("urn:smartrent:test", typ, "ORD-1001", data)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := pub.Publish(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Duplicate || ack.Sequence == 0 {
				t.Fatalf("ack = %+v", ack)
			}
			msg, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := msg.Header.Get("Content-Type"); got != events.ContentTypeStructured {
				t.Errorf("Content-Type = %q", got)
			}
			if got := msg.Header.Get(jetstream.MsgIDHeader); got != e.ID() {
				t.Errorf("Nats-Msg-Id = %q, want the event id %q", got, e.ID())
			}
			var plain map[string]any
			if err := json.Unmarshal(msg.Data, &plain); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]any{"specversion": "1.0", "type": typ, "subject": "ORD-1001", "datacontenttype": "application/json", "dataschema": schemas.ID(typ), "id": e.ID()} {
				if plain[k] != want {
					t.Errorf("%s = %v, want %v", k, plain[k], want)
				}
			}
			if d, ok := plain["data"].(map[string]any); !ok || d["orderId"] != "ORD-1001" {
				t.Errorf("data = %v, want an object with the order id", plain["data"])
			}
			var sdk event.Event
			if err := json.Unmarshal(msg.Data, &sdk); err != nil || sdk.Validate() != nil {
				t.Fatalf("CloudEvents SDK: %v / %v", err, sdk.Validate())
			}
			if sdk.ID() != e.ID() || sdk.Type() != typ {
				t.Errorf("SDK read %s %s", sdk.ID(), sdk.Type())
			}
			env, err := codec.Decode(msg.Header, msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			if env.Mode != events.ModeStructured || env.OrderID() != "ORD-1001" {
				t.Errorf("decoded %s for %s", env.Mode, env.OrderID())
			}
			got, _ := json.Marshal(env.Data)
			want, _ := json.Marshal(data)
			if !bytes.Equal(got, want) {
				t.Errorf("data round trip:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestBinaryModeFromSDKProducer publishes with the CloudEvents SDK's NATS
// JetStream binding in binary mode and decodes the stored message.
func TestBinaryModeFromSDKProducer(t *testing.T) {
	_, js, pub := setup(t)
	ctx := context.Background()
	e := event.New()
	e.SetID("evt-binary-1")
	e.SetSource("urn:shop:orders")
	e.SetType(events.TypeDeviceShipped)
	e.SetSubject("ORD-7")
	e.SetTime(time.Now())
	e.SetExtension(events.ExtensionTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := e.SetData(event.ApplicationJSON, events.DeviceShipped{OrderID: "ORD-7", AssetIdentifiers: []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: "IMEI"}}}); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	header, err := cejs.WriteMsg(binding.WithForceBinary(ctx), binding.ToMessage(&e), &body)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: events.SubjectDeviceShipped, Header: header, Data: body.Bytes()}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID())
	if _, err := pub.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	stored, err := js.Stream(ctx, streams.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stored.GetLastMsgForSubject(ctx, events.SubjectDeviceShipped)
	if err != nil {
		t.Fatal(err)
	}
	env, err := pub.Codec().Decode(raw.Header, raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	d := env.Data.(*events.DeviceShipped)
	if env.Mode != events.ModeBinary || d.AssetIdentifiers[0].Identifier != "356938035643809" || env.Event.ID() != "evt-binary-1" {
		t.Fatalf("decoded %+v %+v", env, d)
	}
	if got := events.TraceParent(env.Event); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent = %q", got)
	}
}

func TestBinaryModeUnknownSpecVersion(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	h := nats.Header{"ce-specversion": {"0.9"}, "ce-id": {"1"}, "ce-source": {"s"}, "ce-type": {events.TypeDeviceDelivered}}
	_, err := codec.Decode(h, []byte(`{"orderId":"ORD-9"}`))
	var de *events.DecodeError
	if !errors.As(err, &de) || de.Kind != events.KindMalformed || de.OrderID != "ORD-9" {
		t.Fatalf("err = %v, want a malformed-message DecodeError naming the order", err)
	}
}

func TestBinaryModeHeadersAreCaseInsensitive(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	h := nats.Header{}
	h["CE-SpecVersion"] = []string{"1.0"}
	h["Ce-Id"] = []string{"x1"}
	h["ce-SOURCE"] = []string{"urn:shop"}
	h["ce-type"] = []string{events.TypeDeviceDelivered}
	h["content-type"] = []string{"application/json"}
	env, err := codec.Decode(h, []byte(`{"orderId":"ORD-9"}`))
	if err != nil {
		t.Fatal(err)
	}
	if env.OrderID() != "ORD-9" || env.Event.ID() != "x1" {
		t.Fatalf("decoded %+v", env.Event)
	}
}

func TestDuplicatePublishStoredOnce(t *testing.T) {
	_, js, pub := setup(t)
	ctx := context.Background()
	e, _ := pub.Codec().New("urn:test", events.TypeDeviceDelivered, "ORD-1", events.DeviceDelivered{OrderID: "ORD-1"})
	first, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	second, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
		t.Fatalf("first %+v second %+v, want the second a duplicate of the first", first, second)
	}
	s, _ := js.Stream(ctx, streams.StreamIn)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestPublishRefusesInvalidData(t *testing.T) {
	_, _, pub := setup(t)
	e, _ := pub.Codec().New("urn:test", events.TypeOrderRejected, "ORD-1", events.OrderRejected{OrderID: "ORD-1", Message: "m"})
	_, err := pub.Publish(context.Background(), e)
	var fe *schemas.FieldError
	if !errors.As(err, &fe) || fe.Field != "/reason" {
		t.Fatalf("err = %v, want a FieldError naming reason", err)
	}
}

func TestPublishFailsWithoutServer(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	pub := streams.NewPublisher(js, events.NewCodec(schemaSet))
	e, _ := pub.Codec().New("urn:test", events.TypeDeviceDelivered, "ORD-1", events.DeviceDelivered{OrderID: "ORD-1"})
	// No stream: the server answers "no responders" at once.
	if _, err := pub.Publish(context.Background(), e); err == nil {
		t.Fatal("publish without a stream succeeded")
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := pub.Publish(ctx, e); err == nil {
		t.Fatal("publish with the server down succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	valid := func(typ, data string) []byte {
		return []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"` + typ + `","subject":"O-1","datacontenttype":"application/json","data":` + data + `}`)
	}
	tests := []struct {
		name    string
		body    []byte
		kind    string
		orderID string
	}{
		{"not json", []byte("hello"), events.KindMalformed, ""},
		{"not a cloudevent", []byte(`{"orderId":"O-1"}`), events.KindMalformed, "O-1"},
		{"unknown type", valid("smartrent.order.cancelled.v1", `{"orderId":"O-1"}`), events.KindUnknownType, "O-1"},
		{"invalid data", valid(events.TypeDeviceShipped, `{"orderId":"O-1","assetIdentifiers":[]}`), events.KindInvalidData, "O-1"},
		{"subject is not the order", valid(events.TypeDeviceDelivered, `{"orderId":"O-2"}`), events.KindWrongSubject, "O-2"},
		{"wrong dataschema", []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"` + events.TypeDeviceDelivered + `","dataschema":"urn:other","data":{"orderId":"O-1"}}`), events.KindInvalidData, "O-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.Decode(nil, tt.body)
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if de.Kind != tt.kind || de.OrderID != tt.orderID {
				t.Fatalf("kind %q order %q, want %q %q (%v)", de.Kind, de.OrderID, tt.kind, tt.orderID, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"smartrent.device.delivered.v1","data":{"orderId":"O"}}`), "")
	f.Add([]byte(`{"orderId":"O"}`), "1.0")
	f.Add([]byte(`{`), "")
	codec := events.NewCodec(schemaSet)
	f.Fuzz(func(t *testing.T, body []byte, specversion string) {
		var h nats.Header
		if specversion != "" {
			h = nats.Header{"ce-specversion": {specversion}, "ce-id": {"1"}, "ce-source": {"s"}, "ce-type": {events.TypeDeviceDelivered}}
		}
		env, err := codec.Decode(h, body)
		if err == nil && env.Data == nil {
			t.Fatal("no error and no data")
		}
	})
}

// TestEncodeCallbackMatchesGenericEncoding: the ingress's fast path writes
// the same event that New+Encode would.
func TestEncodeCallbackMatchesGenericEncoding(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	base := samples()[events.TypeCallbackReceived].(events.CallbackReceived)
	odd := base
	odd.OrderID, odd.Shop, odd.SessionUUID, odd.Status = "lv/ORD 1 <ü>", "lv-web", `a"b\c`+"\u2028", "gr&nted\t"
	for _, d := range []events.CallbackReceived{base, odd} {
		fast, err := codec.EncodeCallback("id-1", "urn:smartrent:webhook-ingress", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", d)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := codec.New("urn:smartrent:webhook-ingress", events.TypeCallbackReceived, d.OrderID, d)
		e.SetID("id-1")
		e.SetExtension(events.ExtensionTraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		generic, err := codec.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("fast path wrote invalid JSON: %v\n%s", err, fast)
		}
		json.Unmarshal(generic, &b)
		delete(a, "time")
		delete(b, "time")
		if ga, gb := fmtJSON(a), fmtJSON(b); ga != gb {
			t.Fatalf("fast path:\n%s\ngeneric:\n%s", ga, gb)
		}
		if _, err := codec.Decode(nil, fast); err != nil { // the schema, from the consumer's side
			t.Fatal(err)
		}
	}
	d := base
	d.OrderID = ""
	if _, err := codec.EncodeCallback("id-2", "urn:x", "", d); err == nil {
		t.Fatal("fast path accepted data that breaks the schema")
	}
}

func fmtJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

// TestDecodeChecksDataNoParserHasSeen: only data inside a body that
// json.Unmarshal accepted skips the syntax check before validation; a
// binary-mode body and data_base64 are checked (a lax parser would take
// +1 as a number).
func TestDecodeChecksDataNoParserHasSeen(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	lax := `{"orderId":"O-1","n":+1}`
	binary := nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"urn:x"}, "ce-type": {events.TypeDeviceDelivered}, "ce-subject": {"O-1"}, "Content-Type": {"application/json"}}
	base64 := []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"` + events.TypeDeviceDelivered + `","subject":"O-1","datacontenttype":"application/json","data_base64":"` +
		b64.StdEncoding.EncodeToString([]byte(lax)) + `"}`)
	for name, in := range map[string]struct {
		h    nats.Header
		body []byte
	}{"binary": {binary, []byte(lax)}, "data_base64": {nil, base64}} {
		_, err := codec.Decode(in.h, in.body)
		var de *events.DecodeError
		if !errors.As(err, &de) || de.Kind != events.KindInvalidData || !strings.Contains(err.Error(), "not JSON") {
			t.Errorf("%s: err = %v, want invalid data that is not JSON", name, err)
		}
	}
}
