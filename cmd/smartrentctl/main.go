// Command smartrentctl is the operator's tool for the Smart Rent bridge:
// orders get/list/reconcile and dlq list/show/replay. See internal/ctl.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/smartrent-bridge/bridge/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := ctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
