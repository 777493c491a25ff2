package ingress_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// benchClients is the load's concurrency (shared/design/benchmarks.md: 16).
const benchClients = 16

// benchBody is a 1 KiB callback body; %d makes every body unique.
func benchBody(n int64) string {
	head := fmt.Sprintf(`{"posSessionUuid":"5e3a459a-aada-4d81-b6ad-09cb9483c8bf","status":"granted","n":%d,"pad":"`, n)
	return head + strings.Repeat("x", 1024-len(head)-2) + `"}`
}

// BenchmarkIngress measures callbacks per second through three paths on
// one server with sync_interval always, in one run, so their ratios are
// comparable: raw JetStream sync publishes (the limit), a minimal net/http
// handler that publishes with a msg id and answers after the PubAck, and
// the ingress handler. `make bench` prints the ratios.
func BenchmarkIngress(b *testing.B) {
	srv := natstest.Run(b, natstest.Options{SyncAlways: true})
	_, js := natstest.Connect(b, srv.ClientURL())
	ctx := context.Background()
	if err := streams.ProvisionStreams(ctx, js, streams.DefaultTopology()); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64

	b.Run("raw_publish", func(b *testing.B) {
		b.SetParallelism(benchClients)
		run(b, func() error {
			n := seq.Add(1)
			msg := &nats.Msg{Subject: events.SubjectCallbackReceived, Data: []byte(benchBody(n)), Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("raw-", n))
			_, err := js.PublishMsg(ctx, msg)
			return err
		})
	})

	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		msg := &nats.Msg{Subject: events.SubjectCallbackReceived, Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("plain-", seq.Add(1)))
		if _, err := js.PublishMsg(r.Context(), msg); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "OK")
	})
	b.Run("plain_handler", func(b *testing.B) { benchHTTP(b, plain, "/cb", &seq) })

	tokens, _ := callbacktoken.New([]string{secret})
	codec := events.NewCodec(schemaSet)
	h, err := ingress.New(ingress.Config{Tokens: tokens, Publisher: streams.NewPublisher(js, codec), Codec: codec, PublishTimeout: 10 * time.Second, CallbackBurst: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ingress_handler", func(b *testing.B) { benchHTTP(b, h, callbacktoken.PathPrefix+tokens.Token("ORD-BENCH"), &seq) })
}

func benchHTTP(b *testing.B, h http.Handler, path string, seq *atomic.Int64) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients * 4, MaxConnsPerHost: benchClients * 4}}
	defer client.CloseIdleConnections()
	url := srv.URL + path
	b.SetParallelism(benchClients)
	run(b, func() error {
		resp, err := client.Post(url, "application/json", strings.NewReader(benchBody(seq.Add(1))))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// run runs op in parallel b.N times and reports msgs/s.
func run(b *testing.B, op func() error) {
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

type nopPub struct{}

func (nopPub) PublishMsg(context.Context, *nats.Msg) (streams.PubAck, error) {
	return streams.PubAck{}, nil
}

// BenchmarkHandlerCPU is the handler's own cost per callback (token,
// parsing, event encoding with schema validation), with a publisher that
// stores nothing: what the ingress adds next to JetStream's.
func BenchmarkHandlerCPU(b *testing.B) {
	tokens, _ := callbacktoken.New([]string{secret})
	h, _ := ingress.New(ingress.Config{Tokens: tokens, Publisher: nopPub{}, Codec: events.NewCodec(schemaSet), CallbackBurst: -1})
	path := callbacktoken.PathPrefix + tokens.Token("ORD-1")
	body := benchBody(1)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
