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
	if err := app.RunBridge(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}
