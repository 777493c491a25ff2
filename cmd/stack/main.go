// Command stack runs the whole product locally and keeps it running until
// Ctrl-C (`make up`): embedded NATS with JetStream, the Inbank sandbox, the
// webhook ingress and a bridge, on the addresses the README's commands
// use. The NATS store is kept in --data-dir between runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv cli.Getenv, out io.Writer) error {
	fs := cli.New("stack", getenv)
	var cfg stack.Config
	fs.StringVar(&cfg.DataDir, "data-dir", "STACK_DATA_DIR", ".stack/nats", "NATS store, kept between runs (delete it to start afresh)")
	fs.StringVar(&cfg.NATSAddr, "nats-addr", "STACK_NATS_ADDR", "127.0.0.1:4222", "NATS client address")
	fs.StringVar(&cfg.SandboxAddr, "sandbox-addr", "STACK_SANDBOX_ADDR", "127.0.0.1:8081", "Inbank sandbox address (API, customer pages, /sandbox control)")
	fs.StringVar(&cfg.IngressAddr, "ingress-addr", "STACK_INGRESS_ADDR", "127.0.0.1:8080", "webhook ingress callback address")
	fs.StringVar(&cfg.IngressMetricsAddr, "ingress-metrics-addr", "STACK_INGRESS_METRICS_ADDR", "127.0.0.1:9091", "webhook ingress /metrics, /healthz, /readyz")
	fs.StringVar(&cfg.BridgeMetricsAddr, "bridge-metrics-addr", "STACK_BRIDGE_METRICS_ADDR", "127.0.0.1:9090", "bridge /metrics, /healthz, /readyz")
	fs.StringVar(&cfg.LogLevel, "log-level", "LOG_LEVEL", "info", "the binaries' log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Log = os.Stderr
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Stop()
	fmt.Fprintf(out, `Smart Rent stack running (Ctrl-C to stop):
  NATS            %s   (store in %s)
  Inbank sandbox  %s   (customer pages; control API under /sandbox)
  webhook ingress http://%s
  bridge          http://%s/metrics, /readyz
Try the README's commands in another terminal, e.g.
  go run ./examples/order-service --nats-url %s --order ORD-42 --price 799
ready
`, s.NATSURL, cfg.DataDir, s.SandboxURL, s.Ingress.Callbacks, s.Bridge.Ops, s.NATSURL)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "stopping")
		return nil
	case err := <-s.Failed():
		return err
	}
}
