package events_test

import (
	"testing"

	"github.com/smartrent-bridge/bridge/internal/events"
)

// BenchmarkCodec measures an order.placed event through encoding and
// decoding, each with schema validation: the per-event cost on both sides.
func BenchmarkCodec(b *testing.B) {
	codec := events.NewCodec(schemaSet)
	data := samples()[events.TypeOrderPlaced]
	e, _ := codec.New("urn:bench", events.TypeOrderPlaced, "ORD-1001", data)
	body, err := codec.Encode(e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Decode(nil, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
