// Command webhook-ingress receives Inbank's server-to-server callbacks and
// republishes each as a CloudEvent on NATS JetStream, answering 200 only
// after JetStream acknowledged it. See internal/ingress, and --help for its
// settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/smartrent-bridge/bridge/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunIngress(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "webhook-ingress:", err)
		os.Exit(1)
	}
}
