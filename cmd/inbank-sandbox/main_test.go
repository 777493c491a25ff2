package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

func startSandbox(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, ready)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sandbox: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		t.Fatalf("sandbox did not start: %v", err)
	}
	return ""
}

func TestSandboxServesThePartnerAPI(t *testing.T) {
	base := startSandbox(t, map[string]string{"SANDBOX_API_KEY": "k1", "SANDBOX_FAULT_STATUS": "503", "SANDBOX_FAULT_RATE": "1"})
	c, _ := inbank.New(inbank.Config{BaseURL: base, APIKey: "k1", ShopUUID: inbanktest.DefaultShopUUID})
	_, err := c.Session(context.Background(), "x")
	if !errors.Is(err, inbankapi.ErrUnavailable) {
		t.Fatalf("err = %v, want the injected 503", err)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
}

func TestSandboxFlags(t *testing.T) {
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"SANDBOX_LATENCY": "fast"}[k]
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "SANDBOX_LATENCY") {
		t.Fatalf("bad duration: %v, want an error naming SANDBOX_LATENCY", err)
	}
}

func chromiumPath() string {
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// TestCustomerSignsInBrowser opens the redirect URL in headless Chromium,
// clicks "Sign" and expects to land on the shop's returnUrl with the session
// granted.
func TestCustomerSignsInBrowser(t *testing.T) {
	browser := chromiumPath()
	if browser == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is missing in CI although `make test` installs it (scripts/ensure-chromium.sh)")
		}
		t.Skip("Chromium is not installed and could not be installed here (see scripts/ensure-chromium.sh); skipping the browser test")
	}
	base := startSandbox(t, nil)
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<html><body><h1 id="back">Back at the shop</h1></body></html>`))
	}))
	defer shop.Close()
	c, _ := inbank.New(inbank.Config{BaseURL: base, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID})
	created, err := c.CreateSession(context.Background(), inbankapi.SessionRequest{
		ProductCode: inbanktest.DefaultProductCode, Currency: "EUR", Locale: "et-EE",
		Purchase: inbankapi.Purchase{PurchaseReference: "browser-1", Description: "iPhone 16 for 24 months"},
		RentalApplicationData: inbankapi.RentalApplicationData{Period: 24, Assets: []inbankapi.SessionAsset{
			{Type: inbankapi.AssetModelBased, ModelID: inbanktest.ModelPhone, ModelName: "Apple iPhone 16", NetPrice: 700},
		}},
		PartnerURLs: &inbankapi.PartnerURLs{ReturnURL: shop.URL + "/return?order=browser-1", CancelURL: shop.URL + "/cancel"},
	})
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	defer cancelTimeout()

	if err := chromedp.Do(bctx, chromedp.Navigate(created.RedirectURL)); err != nil {
		t.Fatalf("open the redirect URL: %v", err)
	}
	description, err := chromedp.Run(bctx, chromedp.Text("#description"))
	if err != nil {
		t.Fatal(err)
	}
	monthly, err := chromedp.Run(bctx, chromedp.Text("#monthly"))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#sign")); err != nil {
		t.Fatalf("click sign: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible("#back")); err != nil {
		t.Fatalf("wait for the shop page: %v", err)
	}
	landed, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if description != "iPhone 16 for 24 months" || !strings.HasSuffix(monthly, "EUR") {
		t.Fatalf("page showed %q and %q, want the order and the quote", description, monthly)
	}
	if want := shop.URL + "/return?order=browser-1"; landed != want {
		t.Fatalf("landed on %q, want the returnUrl %q", landed, want)
	}
	resp, err := http.Get(base + "/sandbox/sessions?purchaseReference=browser-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var infos []inbanktest.SessionInfo
	json.NewDecoder(resp.Body).Decode(&infos)
	if len(infos) != 1 || infos[0].Status != inbankapi.SessionGranted {
		t.Fatalf("sessions = %+v, want one granted", infos)
	}
}
