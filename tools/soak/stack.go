package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

const (
	soakSecret = "soak-callback-secret-0123456789"
	apiKey     = "test-api-key"
	shopUUID   = "a93f1f44-d5dd-4469-bfcc-c1de9e969213"
	product    = "smart_rent"
)

type stackOptions struct {
	bridges     int
	cluster     bool
	sandboxArgs []string
	bridgeEnv   []string
}

// stack is the product running as processes on loopback.
type stack struct {
	bins     *binaries
	dir      string
	nats     []*proc
	natsURL  string
	sandbox  *proc
	sbURL    string
	ingress  *proc
	ingURL   string
	bridges  []*proc
	readyURL []string
	nc       *nats.Conn
	js       jetstream.JetStream
	out      *eventwatch.Watcher
}

func natsConf(dir, name string, port, clusterPort int, routes []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", name, port, filepath.Join(dir, name))
	if clusterPort > 0 {
		fmt.Fprintf(&b, "cluster {\n  name: soak\n  listen: 127.0.0.1:%d\n  routes: [\n", clusterPort)
		for _, r := range routes {
			fmt.Fprintf(&b, "    nats-route://127.0.0.1:%d\n", r)
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

func startStack(ctx context.Context, bins *binaries, dir string, o stackOptions) (*stack, error) {
	s := &stack{bins: bins, dir: dir}
	n := 1
	if o.cluster {
		n = 3
	}
	ports, cports := make([]int, n), make([]int, n)
	for i := range n {
		ports[i], _ = freePort()
		if o.cluster {
			cports[i], _ = freePort()
		}
	}
	var urls []string
	for i := range n {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		var routes []int
		if o.cluster {
			routes = cports
		}
		if err := os.WriteFile(conf, []byte(natsConf(dir, name, ports[i], cports[i], routes)), 0o644); err != nil {
			return nil, err
		}
		p := newProc(name, bins.path("nats-server"), []string{"-c", conf}, nil, dir)
		if err := p.start(); err != nil {
			return nil, err
		}
		s.nats = append(s.nats, p)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	s.natsURL = strings.Join(urls, ",")
	for i := range n {
		if err := waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", ports[i]), 20*time.Second); err != nil {
			s.stop()
			return nil, err
		}
	}

	sbPort, _ := freePort()
	s.sbURL = fmt.Sprintf("http://127.0.0.1:%d", sbPort)
	s.sandbox = newProc("sandbox", bins.path("inbank-sandbox"), append([]string{"--addr", fmt.Sprintf("127.0.0.1:%d", sbPort)}, o.sandboxArgs...), nil, dir)
	if err := s.sandbox.start(); err != nil {
		s.stop()
		return nil, err
	}
	if err := waitHTTP(ctx, s.sbURL+"/healthz", 20*time.Second); err != nil {
		s.stop()
		return nil, err
	}

	replicas := "1"
	if o.cluster {
		replicas = "3"
	}
	common := []string{"NATS_URL=" + s.natsURL, "CALLBACK_SECRET=" + soakSecret, "NATS_REPLICAS=" + replicas, "NATS_CONNECT_TIMEOUT=30s", "LOG_LEVEL=info"}
	ingPort, _ := freePort()
	ingOps, _ := freePort()
	s.ingURL = fmt.Sprintf("http://127.0.0.1:%d", ingPort)
	s.ingress = newProc("ingress", bins.path("webhook-ingress"), nil, append(common,
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", ingPort), fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", ingOps), "INBANK_API_KEY="+apiKey), dir)
	if err := s.ingress.start(); err != nil {
		s.stop()
		return nil, err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ingOps), 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	for i := range o.bridges {
		ops, _ := freePort()
		env := append(append([]string{}, common...),
			"INBANK_BASE_URL="+s.sbURL, "INBANK_API_KEY="+apiKey, "INBANK_SHOP_UUID="+shopUUID, "INBANK_PRODUCT_CODE="+product,
			"CALLBACK_BASE_URL="+s.ingURL, fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", ops),
			"RECONCILE_INTERVAL=2s", "INBANK_TIMEOUT=2s", "CLAIM_TTL=6s", "ACK_WAIT=5s", "ACTIVATION_SETTLE=5s",
		)
		env = append(env, o.bridgeEnv...)
		p := newProc(fmt.Sprintf("bridge-%d", i+1), bins.path("bridge"), nil, env, dir)
		if err := p.start(); err != nil {
			s.stop()
			return nil, err
		}
		s.bridges = append(s.bridges, p)
		s.readyURL = append(s.readyURL, fmt.Sprintf("http://127.0.0.1:%d/readyz", ops))
	}
	for i, u := range s.readyURL {
		if err := waitHTTP(ctx, u, 60*time.Second); err != nil {
			s.stop()
			log, _ := os.ReadFile(s.bridges[i].log)
			if len(log) > 2000 {
				log = log[len(log)-2000:]
			}
			return nil, fmt.Errorf("%s: %w; its log ends:\n%s", s.bridges[i].name, err, log)
		}
	}
	nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.nc = nc
	s.js, _ = jetstream.New(nc)
	s.out, err = eventwatch.Watch(ctx, s.js, events.NewCodec(schemas.MustLoad()), []string{streams.StreamOut}, nil, nil)
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// restartBridge kills bridge i with SIGKILL and starts it again.
func (s *stack) restartBridge(i int) error {
	s.bridges[i].kill()
	return s.bridges[i].start()
}

func (s *stack) stop() {
	if s.out != nil {
		s.out.Stop()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	for _, b := range s.bridges {
		b.stop()
	}
	if s.ingress != nil {
		s.ingress.stop()
	}
	if s.sandbox != nil {
		s.sandbox.stop()
	}
	for _, n := range s.nats {
		n.stop()
	}
}

// sandboxCall posts to the sandbox's control API.
func (s *stack) sandboxCall(ctx context.Context, method, path, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.sbURL+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

type counters struct {
	SessionsCreated map[string]int `json:"sessionsCreated"`
	Activations     map[string]int `json:"activations"`
	Callbacks       struct {
		Sent, Dropped, Failed, Attempts int
	} `json:"callbacks"`
}

func (s *stack) counters(ctx context.Context) (counters, error) {
	var c counters
	resp, err := s.sandboxCall(ctx, http.MethodGet, "/sandbox/counters", "")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}
