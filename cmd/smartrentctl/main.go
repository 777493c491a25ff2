// Command smartrentctl is the operator's tool for the Smart Rent bridge:
// orders get/list/reconcile and dlq list/show/replay. See internal/ctl.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/smartrent-bridge/bridge/internal/ctl"

	// The image has no CA bundle (it is built from scratch): Go's
	// fallback roots are used only where the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := ctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
