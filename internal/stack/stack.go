// Package stack runs the whole product on this machine: an embedded NATS
// server with JetStream, the Inbank sandbox (package inbanktest), the
// webhook ingress and a bridge, wired to each other. `make up` keeps one
// running for the README's commands, the demo plays its scenarios on one,
// and the README's test runs its commands against one.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/smartrent-bridge/bridge/internal/app"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

// Config says where each part listens. An address with port 0 takes a
// free port.
type Config struct {
	DataDir            string // the NATS store (kept between runs when it is)
	NATSAddr           string // default 127.0.0.1:0
	SandboxAddr        string // default 127.0.0.1:0
	IngressAddr        string // the callback listener; default 127.0.0.1:0
	BridgeMetricsAddr  string // default 127.0.0.1:0
	IngressMetricsAddr string // default 127.0.0.1:0
	Log                io.Writer
	LogLevel           string            // of the binaries; default warn
	Env                map[string]string // further settings of both binaries
}

// Secret is the callback secret of a local stack: not for production.
const Secret = "local-stack-callback-secret-not-for-production"

// Stack is a running product.
type Stack struct {
	NATSURL    string
	SandboxURL string
	Fake       *inbanktest.Fake
	Ingress    app.IngressStarted
	Bridge     app.BridgeStarted

	stop func()
	errs chan error
}

// Start starts every part and returns once the ingress and the bridge are
// ready. Stop it with Stop.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	addr := func(a string) string {
		if a == "" {
			return "127.0.0.1:0"
		}
		return a
	}
	s := &Stack{errs: make(chan error, 2)}
	var stops []func()
	s.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fail := func(err error) (*Stack, error) { s.stop(); return nil, err }

	ns, err := startNATS(cfg.DataDir, addr(cfg.NATSAddr))
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() { ns.Shutdown(); ns.WaitForShutdown() })
	s.NATSURL = ns.ClientURL()

	ln, err := net.Listen("tcp", addr(cfg.SandboxAddr))
	if err != nil {
		return fail(fmt.Errorf("listen for the Inbank sandbox: %w", err))
	}
	s.SandboxURL = "http://" + ln.Addr().String()
	s.Fake = inbanktest.New(inbanktest.Config{PublicURL: s.SandboxURL, Callbacks: inbanktest.CallbackPolicy{Sign: true}})
	srv := &http.Server{Handler: s.Fake, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	stops = append(stops, func() { srv.Close(); s.Fake.Close() })

	env := map[string]string{
		"NATS_URL": s.NATSURL, "CALLBACK_SECRET": Secret, "LOG_LEVEL": "warn",
		"INBANK_BASE_URL": s.SandboxURL, "INBANK_API_KEY": inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID": inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode,
		"RECONCILE_INTERVAL": "5s", "SHUTDOWN_TIMEOUT": "5s",
	}
	if cfg.LogLevel != "" {
		env["LOG_LEVEL"] = cfg.LogLevel
	}
	for k, v := range cfg.Env {
		env[k] = v
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	var mu sync.Mutex
	getenv := func(k string) string { mu.Lock(); defer mu.Unlock(); return env[k] }
	set := func(k, v string) { mu.Lock(); defer mu.Unlock(); env[k] = v }

	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stops = append(stops, func() { cancel(); wg.Wait() })

	ingressEnv := func(k string) string {
		switch k {
		case "LISTEN_ADDR":
			return addr(cfg.IngressAddr)
		case "METRICS_ADDR":
			return addr(cfg.IngressMetricsAddr)
		}
		return getenv(k)
	}
	ingressUp := make(chan app.IngressStarted, 1)
	wg.Go(func() { s.errs <- wrap("webhook ingress", app.RunIngress(runCtx, nil, ingressEnv, log, ingressUp)) })
	select {
	case s.Ingress = <-ingressUp:
	case err := <-s.errs:
		return fail(err)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	set("CALLBACK_BASE_URL", "http://"+s.Ingress.Callbacks.String())
	bridgeEnv := func(k string) string {
		if k == "METRICS_ADDR" {
			return addr(cfg.BridgeMetricsAddr)
		}
		return getenv(k)
	}
	bridgeUp := make(chan app.BridgeStarted, 1)
	wg.Go(func() { s.errs <- wrap("bridge", app.RunBridge(runCtx, nil, bridgeEnv, log, bridgeUp)) })
	select {
	case s.Bridge = <-bridgeUp:
	case err := <-s.errs:
		return fail(err)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return s, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Failed receives an error when the ingress or the bridge stops by itself.
func (s *Stack) Failed() <-chan error { return s.errs }

// Stop stops the binaries (gracefully), the sandbox and NATS.
func (s *Stack) Stop() { s.stop() }

func startNATS(dir, addr string) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("NATS address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("NATS address %q: %w", addr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "smartrent-local", Host: host, Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: dir, SyncAlways: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start (is the port taken?)")
	}
	return ns, nil
}
