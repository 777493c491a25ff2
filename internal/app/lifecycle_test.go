package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// clusterEnv is what both binaries need on the cluster c with R3.
func clusterEnv(c *natstest.Cluster, inbankURL string) map[string]string {
	return map[string]string{
		"NATS_URL": c.URLs(), "NATS_REPLICAS": "3", "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0",
		"INBANK_BASE_URL": inbankURL, "INBANK_API_KEY": inbanktest.DefaultAPIKey, "INBANK_SHOP_UUID": inbanktest.DefaultShopUUID,
		"INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode, "CALLBACK_BASE_URL": "http://127.0.0.1:1",
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestStartUpWaitsForAFormingCluster: started while only one node of
// three is up (no JetStream quorum: the streams cannot be placed), both
// binaries stay up and not ready, and say what they wait for on /readyz
// and in the log; once the other nodes join they become ready by
// themselves. Before, they exited (a crash loop on a fresh install).
func TestStartUpWaitsForAFormingCluster(t *testing.T) {
	c := natstest.NewCluster(t, 1)
	_, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	env := clusterEnv(c, inbankSrv.URL)
	ops := map[string]string{"webhook-ingress": freeAddr(t), "bridge": freeAddr(t)}
	procs := map[string]*proc{}
	for name, addr := range ops {
		procs[name] = startProc(t, name, with(env, "METRICS_ADDR", addr))
	}
	for name, addr := range ops {
		p := procs[name]
		await(t, 30*time.Second, name+" /readyz 503 naming what it waits for", func() bool {
			code, body := readyz(addr)
			return code == http.StatusServiceUnavailable && strings.Contains(body, "waiting for JetStream")
		})
		await(t, 30*time.Second, name+" log line", func() bool {
			return strings.Contains(p.log.String(), `"msg":"waiting for JetStream before becoming ready"`)
		})
		select {
		case err := <-p.done:
			t.Fatalf("%s exited while the cluster formed: %v\n%s", name, err, p.log)
		default:
		}
	}
	c.StartAll(t)
	for name, addr := range ops {
		took := await(t, 90*time.Second, name+" ready once the cluster formed", func() bool {
			code, _ := readyz(addr)
			return code == http.StatusOK
		})
		t.Logf("%s ready %v after the other nodes started", name, took.Round(time.Millisecond))
	}
}

// TestReadyWithinTwoSecondsOnR3: once the streams, bucket and consumers
// exist on a three-node cluster, each binary answers /readyz 200 within
// 2 s of its process starting.
func TestReadyWithinTwoSecondsOnR3(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.URLs())
	topo := streams.DefaultTopology()
	topo.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	if _, err := orderstore.OpenIndexOf(ctx, js, "setup"); err != nil {
		t.Fatal(err)
	}
	_, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	binaries(t) // built before the clock starts
	for _, name := range []string{"webhook-ingress", "bridge"} {
		addr := freeAddr(t)
		start := time.Now()
		p := startProc(t, name, with(clusterEnv(c, inbankSrv.URL), "METRICS_ADDR", addr))
		await(t, 10*time.Second, name+" ready", func() bool {
			code, _ := readyz(addr)
			return code == http.StatusOK
		})
		took := time.Since(start)
		t.Logf("%s ready %v after start", name, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("%s ready after %v, want within 2 s; log:\n%s", name, took, p.log)
		}
	}
}

// TestSIGTERMIngressUnderLoad: 16 clients post callbacks while the
// ingress gets SIGTERM. /readyz turns 503 first and callbacks are still
// taken during SHUTDOWN_DELAY; then the listener closes, requests in
// flight finish, and the process exits 0 within the limit. Every
// callback answered 200 is in SMARTRENT_CALLBACKS.
func TestSIGTERMIngressUnderLoad(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	opsAddr, listen := freeAddr(t), freeAddr(t)
	p := startProc(t, "webhook-ingress", map[string]string{
		"NATS_URL": srv.ClientURL(), "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": listen, "METRICS_ADDR": opsAddr,
		"SHUTDOWN_DELAY": "1s", "SHUTDOWN_TIMEOUT": "10s",
	})
	await(t, 20*time.Second, "ingress ready", func() bool { code, _ := readyz(opsAddr); return code == http.StatusOK })

	tokens, _ := callbacktoken.New([]string{testSecret})
	var (
		mu       sync.Mutex
		answered []string // order ids answered 200
		other    = map[string]int{}
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("SIG-%02d-%05d", g, n)
				body := `{"uuid":"` + id + `","status":"granted","pad":"` + strings.Repeat("x", 900) + `"}`
				resp, err := client.Post("http://"+listen+callbacktoken.PathPrefix+tokens.Token(id), "application/json", strings.NewReader(body))
				sent.Add(1)
				mu.Lock()
				switch {
				case err != nil:
					other["connection error"]++
				case resp.StatusCode == http.StatusOK:
					answered = append(answered, id)
				default:
					other[resp.Status]++
				}
				mu.Unlock()
				if err != nil {
					return // the listener is closed: Inbank would retry later
				}
				resp.Body.Close()
			}
		}()
	}
	await(t, 20*time.Second, "load running", func() bool { return sent.Load() >= 300 })
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notReady := await(t, 900*time.Millisecond, "/readyz 503 within SHUTDOWN_DELAY", func() bool {
		code, _ := readyz(opsAddr)
		return code == http.StatusServiceUnavailable
	})
	mu.Lock()
	atNotReady := len(answered)
	mu.Unlock()
	err := p.exited(t, 15*time.Second)
	took := time.Since(signalled)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log)
	}
	if took < time.Second || took > 11*time.Second {
		t.Errorf("exited %v after SIGTERM; want after SHUTDOWN_DELAY 1 s, within delay + SHUTDOWN_TIMEOUT", took)
	}
	if len(answered) <= atNotReady {
		t.Errorf("no callback taken after readiness turned off (%d before, %d in all): the listener closed before SHUTDOWN_DELAY", atNotReady, len(answered))
	}
	if !strings.Contains(p.log.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", p.log)
	}
	stored := storedCallbacks(t, js)
	for _, id := range answered {
		if !stored[id] {
			t.Errorf("callback %s answered 200 but not in SMARTRENT_CALLBACKS", id)
		}
	}
	t.Logf("sent %d, answered 200: %d (%d before /readyz 503 at %v), other: %v, stored: %d, exit %v after SIGTERM",
		sent.Load(), len(answered), atNotReady, notReady.Round(time.Millisecond), other, len(stored), took.Round(time.Millisecond))
}

// storedCallbacks are the order ids (CloudEvent subjects) of the
// callback events in SMARTRENT_CALLBACKS.
func storedCallbacks(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectCallbackReceived}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for seen := uint64(0); seen < info.State.Msgs; seen++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			break // fewer callback events than messages in the stream
		}
		var ce struct{ Subject string }
		if err := json.NewDecoder(bytes.NewReader(m.Data())).Decode(&ce); err != nil {
			t.Fatal(err)
		}
		out[ce.Subject] = true
	}
	return out
}

// TestSIGTERMBridgeUnderLoad: the bridge gets SIGTERM while it creates
// sessions for 80 orders (Inbank answering in 100 ms). It stops fetching,
// finishes the handlers it holds, and exits 0 within the limit; a new
// bridge takes the rest. Every order gets exactly one session, at Inbank
// and in the events: nothing lost, nothing done twice.
func TestSIGTERMBridgeUnderLoad(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Latency: inbanktest.Duration(100 * time.Millisecond)})
	opsAddr := freeAddr(t)
	p := startProc(t, "bridge", with(w.env, "METRICS_ADDR", opsAddr, "LOG_LEVEL", "info", "SHUTDOWN_TIMEOUT", "10s", "CONCURRENCY", "8"))
	await(t, 20*time.Second, "bridge ready", func() bool { code, _ := readyz(opsAddr); return code == http.StatusOK })
	ids := make([]string, 80)
	for i := range ids {
		ids[i] = fmt.Sprintf("TERM-%03d", i)
		w.place(ids[i], 300)
	}
	created := func() int {
		n := 0
		for _, id := range ids {
			if len(w.out.of(id, events.TypeSessionCreated)) > 0 {
				n++
			}
		}
		return n
	}
	await(t, 30*time.Second, "first sessions", func() bool { return created() >= 5 })
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.exited(t, 15*time.Second)
	took := time.Since(signalled)
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log)
	}
	atStop := created()
	if atStop == len(ids) {
		t.Fatalf("all %d orders done before the bridge stopped: no load at SIGTERM", atStop)
	}
	log := p.log.String()
	if !strings.Contains(log, `"msg":"stopped"`) || strings.Contains(log, "after SHUTDOWN_TIMEOUT") {
		t.Errorf("want a clean stop within SHUTDOWN_TIMEOUT; log:\n%s", log)
	}
	w.bridge()
	for _, id := range ids {
		w.out.wait(id, events.TypeSessionCreated, 1)
	}
	for _, id := range ids {
		if n := len(w.out.of(id, events.TypeSessionCreated)); n != 1 {
			t.Errorf("%s: %d session.created", id, n)
		}
		if n := len(w.fake.Sessions(id)); n != 1 {
			t.Errorf("%s: %d sessions at Inbank", id, n)
		}
	}
	t.Logf("stopped %v after SIGTERM with %d of %d sessions created; the next bridge did the rest", took.Round(time.Millisecond), atStop, len(ids))
}
