package streams_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// lineLog collects a JSON logger's lines and tells a waiting test of
// each one.
type lineLog struct {
	mu    sync.Mutex
	lines []map[string]any
	added chan struct{}
}

func (l *lineLog) Write(p []byte) (int, error) {
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(p), &line); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

// await returns the first line whose msg is msg, waiting up to 10 s.
func (l *lineLog) await(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if line["msg"] == msg {
				l.mu.Unlock()
				return line
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("no %q line in 10 s", msg)
		}
	}
}

// TestConsumerLogLinesNameTheMessage: the consumer's own lines (retry,
// dead letter) name the consumer, subject, stream sequence, delivery,
// order, type and shop — the logger is built only when a line is written,
// so a message that is simply acknowledged logs nothing.
func TestConsumerLogLinesNameTheMessage(t *testing.T) {
	nc, js, topo, pub := bridgeStreams(t, nil)
	again := errors.New("try again")
	rec := newDeliveryRecorder(func(id string, n int) error {
		switch {
		case id == "BLOCKED":
			return streams.Permanent(errors.New("refused"))
		case id == "AGAIN" && n == 1:
			return again
		}
		return nil
	})
	logs := &lineLog{added: make(chan struct{}, 1)}
	consumeDevices(t, nc, js, topo, rec, streams.ConsumerConfig{
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond,
	})
	publishShipped(t, pub, "PASSES")
	publishShipped(t, pub, "BLOCKED")
	publishShipped(t, pub, "AGAIN")

	for msg, want := range map[string]map[string]any{
		"dead-lettered":  {"order_id": "BLOCKED", "delivery": 1.0},
		"retrying later": {"order_id": "AGAIN", "delivery": 1.0, "err": again.Error()},
	} {
		line := logs.await(t, msg)
		want["consumer"], want["subject"], want["type"], want["shop"] = streams.ConsumerDevices, events.SubjectDeviceShipped, events.TypeDeviceShipped, "default"
		for k, v := range want {
			if line[k] != v {
				t.Errorf("%q line: %s = %v, want %v (line %v)", msg, k, line[k], v, line)
			}
		}
		if seq, ok := line["stream_seq"].(float64); !ok || seq < 1 {
			t.Errorf("%q line: stream_seq %v", msg, line["stream_seq"])
		}
	}
	rec.waitFor(t, 10*time.Second, "AGAIN handled twice and PASSES once", func() bool { return len(rec.times["AGAIN"]) == 2 && len(rec.times["PASSES"]) == 1 })
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, line := range logs.lines {
		if line["order_id"] == "PASSES" || strings.Contains(line["msg"].(string), "PASSES") {
			t.Errorf("an acknowledged message logged: %v", line)
		}
	}
}
