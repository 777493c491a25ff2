// Command bridge consumes the shop's order, shipment and delivery events
// and Inbank's callbacks from NATS JetStream, makes the matching Inbank
// Smart Rent calls, and publishes session and contract state events. See
// internal/handlers for the workflow and its crash-safety, and --help for
// its settings.
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

	// The image has no CA bundle (it is built from scratch): Go's
	// fallback roots are used only where the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := func() error { return app.RunBridge(ctx, os.Args[1:], os.Getenv, os.Stderr, nil) }
	if len(os.Args) > 1 && os.Args[1] == "provision" {
		// As an admin identity: create or update streams, buckets and
		// consumers, then exit (the chart's Job).
		run = func() error { return app.RunProvision(ctx, os.Args[2:], os.Getenv, os.Stderr) }
	}
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}
