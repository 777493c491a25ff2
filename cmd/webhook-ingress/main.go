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
	"runtime/debug"
	"syscall"

	"github.com/smartrent-bridge/bridge/internal/app"

	// The image has no CA bundle (it is built from scratch): Go's
	// fallback roots are used only where the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	// The ingress keeps a few MB live and allocates per request, so with
	// Go's default GOGC=100 it collects dozens of times a second under
	// load. Unless GOGC is set, 400: a still small heap for that CPU.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
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
