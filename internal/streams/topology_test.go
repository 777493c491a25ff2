package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/ from the Go topology")

func TestProvisionIsIdempotentAndUpdates(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	topo := streams.DefaultTopology()
	for range 2 {
		if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
			t.Fatal(err)
		}
	}
	names := js.StreamNames(ctx)
	n := 0
	for range names.Name() {
		n++
	}
	if n != 6 { // four streams and the two KV buckets
		t.Fatalf("%d streams, want 6", n)
	}
	// An operator changed the limits: start-up updates, not duplicates.
	topo.InMaxAge = 48 * time.Hour
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, streams.StreamIn)
	if info, _ := s.Info(ctx); info.Config.MaxAge != 48*time.Hour {
		t.Fatalf("max age = %v, want the updated 48h", info.Config.MaxAge)
	}
}

func TestProvisionRefusesIncompatibleStream(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streams.StreamOut, Subjects: []string{"smartrent.out.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	err := streams.ProvisionStreams(ctx, js, streams.DefaultTopology())
	if !errors.Is(err, streams.ErrIncompatible) {
		t.Fatalf("err = %v, want ErrIncompatible", err)
	}
}

func TestProvisionConcurrently(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 { // two bridges and two ingresses starting together
		_, js := natstest.Connect(t, srv.ClientURL())
		wg.Go(func() {
			_, err := streams.ProvisionBridge(context.Background(), js, streams.DefaultTopology())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestProvisionOnR3Cluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.URLs())
	topo := streams.DefaultTopology()
	topo.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, streams.StreamIn)
	if info, _ := s.Info(ctx); info.Config.Replicas != 3 {
		t.Fatalf("replicas = %d", info.Config.Replicas)
	}
}

// TestDeployDefinitionsInSync keeps deploy/nats/*.json equal to the Go
// definitions (regenerate with -update).
func TestDeployDefinitionsInSync(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "nats")
	topo := streams.DefaultTopology()
	files := map[string]any{}
	for _, s := range topo.Streams() {
		files[filepath.Join("streams", s.Name+".json")] = s
	}
	for _, c := range topo.Consumers() {
		files[filepath.Join("consumers", c.Stream, c.Durable+".json")] = c.ConsumerConfig
	}
	files[filepath.Join("kv", streams.BucketOrders+".json")] = topo.OrdersBucket()
	files[filepath.Join("kv", streams.BucketOpen+".json")] = topo.OpenBucket()
	for name, v := range files {
		got, _ := json.MarshalIndent(v, "", "  ")
		got = append(got, '\n')
		path := filepath.Join(dir, name)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, got, 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (regenerate with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the Go definition (regenerate with -update)", path)
		}
	}
}

func TestDeployServerConfigs(t *testing.T) {
	for _, u := range []string{"SYSTEM", "ADMIN", "INGRESS", "BRIDGE", "ORDERS", "SHIPPING", "ANALYTICS", "OPERATOR"} {
		t.Setenv("SMARTRENT_NATS_"+u+"_PASSWORD", "x")
	}
	for _, f := range []string{"nats-server.conf", "nats-server-secure.conf", "cluster-a.conf", "cluster-b.conf", "cluster-c.conf"} {
		opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !opts.JetStream || !opts.SyncAlways || opts.HTTPPort == 0 {
			t.Errorf("%s: jetstream %v sync always %v monitoring %d", f, opts.JetStream, opts.SyncAlways, opts.HTTPPort)
		}
		if opts.Host != "127.0.0.1" {
			t.Errorf("%s listens on %q; the shipped configs bind loopback", f, opts.Host)
		}
		if strings.HasPrefix(f, "cluster") && len(opts.Routes) != 3 {
			t.Errorf("%s: %d routes, want 3", f, len(opts.Routes))
		}
	}
}

// TestAwaitWithinTriesAStepAgain: a set-up step of many requests whose
// attempt fails (a request a busy cluster left unanswered) is reported
// and run again, each attempt with its own deadline, until it passes; a
// step that never passes ends with the context, naming its last error.
func TestAwaitWithinTriesAStepAgain(t *testing.T) {
	var reports []string
	ctx := streams.WithSetupReport(context.Background(), func(step string, err error) {
		reports = append(reports, step+": "+err.Error())
	})
	const attempt = 300 * time.Millisecond
	unanswered := errors.New("nats: timeout")
	var deadlines []time.Duration
	err := streams.AwaitWithin(ctx, "index open orders", attempt, func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		if !ok {
			t.Fatal("an attempt without a deadline")
		}
		deadlines = append(deadlines, time.Until(d))
		if len(deadlines) < 3 {
			return unanswered
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a step that passes on its third attempt: %v", err)
	}
	if len(deadlines) != 3 {
		t.Fatalf("%d attempts, want 3", len(deadlines))
	}
	for i, d := range deadlines {
		if d <= 0 || d > attempt {
			t.Errorf("attempt %d had %v left, want (0, %v]", i+1, d, attempt)
		}
	}
	want := "index open orders: nats: timeout"
	if len(reports) != 2 || reports[0] != want || reports[1] != want {
		t.Errorf("reports %q, want two of %q", reports, want)
	}

	bounded, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	err = streams.AwaitWithin(bounded, "migrate order state keys", attempt, func(context.Context) error { return unanswered })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error: nats: timeout") || !strings.Contains(err.Error(), "migrate order state keys") {
		t.Errorf("a step that never passes ended with %v", err)
	}
}
