package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

func TestLogHandlerWritesEachKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "bridge", "shop", "default")
	ctx := WithLogAttrs(context.Background(), slog.String("shop", "lv-web"))
	log.InfoContext(ctx, "input rejected", "shop", "lt-market", "order_id", "ORD-1")
	log.WithGroup("g").InfoContext(ctx, "grouped", "order_id", "ORD-2")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var first map[string]any // jsonv2 refuses duplicate names, as strict log pipelines do
	if err := jsonv2.Unmarshal(lines[0], &first); err != nil {
		t.Fatalf("%v\n%s", err, lines[0])
	}
	if first["shop"] != "lt-market" || first["service"] != "bridge" || first["order_id"] != "ORD-1" {
		t.Fatalf("the call's value must win: %s", lines[0])
	}
	var second struct {
		Service string         `json:"service"`
		Shop    string         `json:"shop"`
		G       map[string]any `json:"g"`
	}
	if err := jsonv2.Unmarshal(lines[1], &second, jsonv2.RejectUnknownMembers(false)); err != nil {
		t.Fatalf("%v\n%s", err, lines[1])
	}
	if second.Service != "bridge" || second.Shop != "default" || second.G["order_id"] != "ORD-2" || second.G["shop"] != "lv-web" {
		t.Fatalf("grouped line: %s", lines[1])
	}
}
