// Command inbank-sandbox runs the fake Inbank Smart Rent API (package
// inbanktest) as a server: the partner API under /partner/v3, the customer
// page behind each redirectUrl, and the control API under /sandbox.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "inbank-sandbox:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when not nil, receives the base URL once
// the listener is open.
func run(ctx context.Context, args []string, getenv cli.Getenv, ready chan<- string) error {
	fs := cli.New("inbank-sandbox", getenv)
	addr := fs.String("addr", "SANDBOX_ADDR", "127.0.0.1:8081", "listen address")
	publicURL := fs.String("public-url", "SANDBOX_PUBLIC_URL", "", "base of redirect URLs (default http://<addr>)")
	apiKey := fs.String("api-key", "SANDBOX_API_KEY", inbanktest.DefaultAPIKey, "API key the sandbox accepts")
	shop := fs.String("shop-uuid", "SANDBOX_SHOP_UUID", inbanktest.DefaultShopUUID, "shop uuid the sandbox serves")
	product := fs.String("product-code", "SANDBOX_PRODUCT_CODE", inbanktest.DefaultProductCode, "product code of the catalogue")
	activationDelay := fs.Duration("activation-delay", "SANDBOX_ACTIVATION_DELAY", 0, "time from an activation call to the contract being activated")
	latency := fs.Duration("latency", "SANDBOX_LATENCY", 0, "latency added to every partner API call")
	faultStatus := fs.Int("fault-status", "SANDBOX_FAULT_STATUS", 0, "HTTP status injected into partner API calls (e.g. 503)")
	faultRate := fs.Float("fault-rate", "SANDBOX_FAULT_RATE", 0, "share of calls that get --fault-status (0..1)")
	dropRate := fs.Float("callback-drop-rate", "SANDBOX_CALLBACK_DROP_RATE", 0, "share of callbacks never sent (0..1)")
	duplicates := fs.Int("callback-duplicates", "SANDBOX_CALLBACK_DUPLICATES", 0, "extra copies of each callback")
	cbDelay := fs.Duration("callback-delay", "SANDBOX_CALLBACK_DELAY", 0, "delay of each callback (random up to this with --callback-reorder)")
	reorder := fs.Bool("callback-reorder", "SANDBOX_CALLBACK_REORDER", false, "deliver callbacks out of order")
	sign := fs.Bool("callback-sign", "SANDBOX_CALLBACK_SIGN", true, "sign callbacks (HMAC-SHA512 over timestamp.body)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	base := *publicURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	fake := inbanktest.New(inbanktest.Config{
		APIKey: *apiKey, ShopUUID: *shop, ProductCode: *product, ActivationDelay: *activationDelay,
		PublicURL: base, Logger: log,
		Callbacks: inbanktest.CallbackPolicy{DropRate: *dropRate, Duplicates: *duplicates, Delay: inbanktest.Duration(*cbDelay), Reorder: *reorder, Sign: *sign},
	})
	defer fake.Close()
	if *latency > 0 || *faultStatus != 0 {
		fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Latency: inbanktest.Duration(*latency), Status: *faultStatus, Rate: *faultRate})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", fake)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("inbank sandbox listening", "url", base, "shop", *shop, "product_code", *product)
	if ready != nil {
		ready <- base
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
