// Command demo runs the whole Smart Rent flow on this machine — embedded
// NATS, the Inbank sandbox, the ingress and the bridge — plays the shop's
// systems and customers, prints a timeline and a summary, and exits 0 when
// every order reached its expected state. DEMO_INTERACTIVE=1 lets a person
// act as the customer in the sandbox's page instead.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartrent-bridge/bridge/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := demo.Config{Interactive: os.Getenv("DEMO_INTERACTIVE") == "1", Timeout: 50 * time.Second, DataDir: os.Getenv("DEMO_DATA_DIR"), Out: os.Stdout}
	if err := demo.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
