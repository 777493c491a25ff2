package inbank_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

func newClient(t *testing.T, baseURL string, opts ...inbank.Option) *inbank.Client {
	t.Helper()
	c, err := inbank.New(inbank.Config{BaseURL: baseURL, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID, Timeout: 2 * time.Second}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func phoneSession(ref string, net float64) inbankapi.SessionRequest {
	return inbankapi.SessionRequest{
		ProductCode: inbanktest.DefaultProductCode, Currency: "EUR", Locale: "et-EE",
		ValidUntil: time.Now().Add(time.Hour).Format(time.RFC3339),
		Purchase:   inbankapi.Purchase{PurchaseReference: ref, Description: "iPhone 16 rental"},
		RentalApplicationData: inbankapi.RentalApplicationData{
			Period: 24,
			Assets: []inbankapi.SessionAsset{{Type: inbankapi.AssetModelBased, ModelID: inbanktest.ModelPhone, ModelName: "iPhone 16", NetPrice: net}},
		},
		PartnerURLs: &inbankapi.PartnerURLs{ReturnURL: "https://shop.example/return", CancelURL: "https://shop.example/cancel"},
	}
}

func TestPathA_FullFlowThroughClient(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	c := newClient(t, srv.URL)

	cond, err := c.RentalConditions(ctx, inbanktest.DefaultProductCode, inbankapi.ModelIdentifierEAN, inbanktest.EANPhone)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cond.ID, inbanktest.ModelPhone; got != want {
		t.Fatalf("conditions id = %q, want %q", got, want)
	}
	if !cond.OffersPeriod(24) || !cond.AcceptsIdentifierType(inbankapi.AssetIdentifierIMEI) {
		t.Fatalf("conditions = %+v, want 24 months and IMEI", cond)
	}

	calc, err := c.Calculate(ctx, inbanktest.DefaultProductCode, inbankapi.CalculationRequest{
		Period: 24, InsuranceUsed: true,
		Assets: []inbankapi.CalculationAsset{{Type: inbankapi.AssetModelBased, ModelID: cond.ID, NetPrice: 800}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// financed = 800×1.24/1.24 − 800×0.30 = 560; 560/24 + 560×0.09/12 + 800×0.008 = 23.33+4.2+6.4
	if got, want := calc.NetMonthlyPayment, 33.93; got != want {
		t.Fatalf("netMonthlyPayment = %v, want %v", got, want)
	}
	if got, want := calc.GrossMonthlyPayment, 42.07; got != want {
		t.Fatalf("grossMonthlyPayment = %v, want %v", got, want)
	}

	created, err := c.CreateSession(ctx, phoneSession("order-1", 800))
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != inbankapi.SessionPending || !strings.HasSuffix(created.RedirectURL, "/session/"+created.UUID) {
		t.Fatalf("created = %+v", created)
	}
	if _, err := fake.Sign(created.UUID); err != nil {
		t.Fatal(err)
	}
	s, err := c.Session(ctx, created.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != inbankapi.SessionGranted || s.CreditContractUUID == "" {
		t.Fatalf("session = %+v, want granted with a contract", s)
	}
	err = c.ActivateContract(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID)
	if !errors.Is(err, inbankapi.ErrRejected) {
		t.Fatalf("activation before identifiers: err = %v, want rejected", err)
	}
	ids := inbankapi.AssetIdentifiersRequest{AssetIdentifiers: []inbankapi.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}}
	if err := c.AssignAssetIdentifiers(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID, ids); err != nil {
		t.Fatal(err)
	}
	if err := c.ActivateContract(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID); err != nil {
		t.Fatal(err)
	}
	k, err := c.Contract(ctx, s.CreditContractUUID)
	if err != nil {
		t.Fatal(err)
	}
	if k.Status != inbankapi.ContractActivated {
		t.Fatalf("contract status = %q, want activated", k.Status)
	}
	if got := fake.Activations(s.CreditContractUUID); got != 2 {
		t.Fatalf("activation calls = %d, want 2 (one refused, one accepted)", got)
	}
	if s, _ := c.Session(ctx, created.UUID); s.Status != inbankapi.SessionCompleted {
		t.Fatalf("session after activation = %q, want completed", s.Status)
	}
}

func TestPathB_PortalApproval(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	c := newClient(t, srv.URL)
	created, err := c.CreateSession(ctx, phoneSession("order-b", 500))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.Sign(created.UUID); err != nil {
		t.Fatal(err)
	}
	if err := fake.PortalApprove(created.UUID); err != nil {
		t.Fatal(err)
	}
	s, err := c.Session(ctx, created.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != inbankapi.SessionCompleted {
		t.Fatalf("status = %q, want completed", s.Status)
	}
	k, err := c.Contract(ctx, s.CreditContractUUID)
	if err != nil || k.Status != inbankapi.ContractActivated {
		t.Fatalf("contract = %+v, %v; want activated", k, err)
	}
	if got := fake.Activations(s.CreditContractUUID); got != 0 {
		t.Fatalf("API activations = %d, want 0 on path B", got)
	}
}

func TestAsynchronousActivation(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{ActivationDelay: 50 * time.Millisecond})
	c := newClient(t, srv.URL)
	created, _ := c.CreateSession(ctx, phoneSession("order-async", 500))
	fake.Sign(created.UUID)
	s, _ := c.Session(ctx, created.UUID)
	ids := inbankapi.AssetIdentifiersRequest{AssetIdentifiers: []inbankapi.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}}
	if err := c.AssignAssetIdentifiers(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID, ids); err != nil {
		t.Fatal(err)
	}
	if err := c.ActivateContract(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID); err != nil {
		t.Fatal(err)
	}
	k, _ := c.Contract(ctx, s.CreditContractUUID)
	if k.Status == inbankapi.ContractActivated {
		t.Fatal("contract activated at once, want after the delay")
	}
	err := c.ActivateContract(ctx, inbanktest.DefaultProductCode, s.CreditContractUUID)
	var api *inbankapi.APIError
	if !errors.As(err, &api) || api.ErrorCode != "CONTRACT_ALREADY_ACTIVATED" {
		t.Fatalf("second activation: %v, want CONTRACT_ALREADY_ACTIVATED", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.Status != inbankapi.ContractActivated {
		if time.Now().After(deadline) {
			t.Fatal("contract never activated")
		}
		time.Sleep(10 * time.Millisecond) // polling a remote status, as the bridge does
		k, _ = c.Contract(ctx, s.CreditContractUUID)
	}
}

func TestDocumentedErrors(t *testing.T) {
	ctx := context.Background()
	_, srv := inbanktest.NewServer(t, inbanktest.Config{})
	good := newClient(t, srv.URL)
	wrongKey, _ := inbank.New(inbank.Config{BaseURL: srv.URL, APIKey: "nope", ShopUUID: inbanktest.DefaultShopUUID})
	wrongShop, _ := inbank.New(inbank.Config{BaseURL: srv.URL, APIKey: inbanktest.DefaultAPIKey, ShopUUID: "00000000-0000-4000-8000-000000000000"})

	tests := []struct {
		name      string
		call      func() error
		status    int
		errorCode string
		is        error
	}{
		{"wrong key", func() error { _, err := wrongKey.Session(ctx, "x"); return err }, 401, "", inbankapi.ErrUnauthorized},
		{"unknown shop", func() error { _, err := wrongShop.Session(ctx, "x"); return err }, 404, "", inbankapi.ErrNotFound},
		{"unknown model", func() error {
			_, err := good.RentalConditions(ctx, inbanktest.DefaultProductCode, inbankapi.ModelIdentifierEAN, "123")
			return err
		}, 404, "", inbankapi.ErrNotFound},
		{"unknown model id", func() error {
			s := phoneSession("o", 500)
			s.RentalApplicationData.Assets[0].ModelID = "nokia-3310"
			_, err := good.CreateSession(ctx, s)
			return err
		}, 422, "ASSET_MODEL_NOT_FOUND", inbankapi.ErrRejected},
		{"price out of limits", func() error { _, err := good.CreateSession(ctx, phoneSession("o", 5000)); return err }, 422, "CONSTRAINTS_VIOLATED_GENERAL", inbankapi.ErrRejected},
		{"unknown contract", func() error { return good.ActivateContract(ctx, inbanktest.DefaultProductCode, "nope") }, 404, "", inbankapi.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var api *inbankapi.APIError
			if !errors.As(err, &api) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if got, want := api.Status, tt.status; got != want {
				t.Errorf("status = %d, want %d", got, want)
			}
			if got, want := api.ErrorCode, tt.errorCode; got != want {
				t.Errorf("errorCode = %q, want %q", got, want)
			}
			if api.Message == "" {
				t.Error("message is empty")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if inbankapi.IsTransient(err) {
				t.Errorf("%v is transient, want permanent", err)
			}
		})
	}
}

func TestInjectedFaults(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	c := newClient(t, srv.URL)
	tests := []struct {
		name       string
		fault      inbanktest.Fault
		transient  bool
		retryAfter time.Duration
		is         error
	}{
		{"500 is permanent", inbanktest.Fault{Status: 500}, false, 0, inbankapi.ErrServer},
		{"502", inbanktest.Fault{Status: 502}, true, 0, inbankapi.ErrUnavailable},
		{"503 with Retry-After", inbanktest.Fault{Status: 503, RetryAfterSeconds: 7}, true, 7 * time.Second, inbankapi.ErrUnavailable},
		{"504", inbanktest.Fault{Status: 504}, true, 0, inbankapi.ErrUnavailable},
		{"429 with Retry-After", inbanktest.Fault{Status: 429, RetryAfterSeconds: 2}, true, 2 * time.Second, inbankapi.ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fault.Remaining = 1
			fake.SetFault(inbank.OpGetSession, tt.fault)
			_, err := c.Session(ctx, "any")
			if got := inbankapi.IsTransient(err); got != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tt.transient)
			}
			if got := inbankapi.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			// The fault was for one call only: the next one reaches the fake.
			if _, err := c.Session(ctx, "any"); !errors.Is(err, inbankapi.ErrNotFound) {
				t.Errorf("after the fault: %v, want not found", err)
			}
		})
	}
	t.Run("timeout is transient", func(t *testing.T) {
		fake.SetFault(inbank.OpGetSession, inbanktest.Fault{Timeout: true, Remaining: 1})
		short, _ := inbank.New(inbank.Config{BaseURL: srv.URL, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID, Timeout: 50 * time.Millisecond})
		_, err := short.Session(ctx, "any")
		var tr *inbankapi.TransportError
		if !errors.As(err, &tr) || !inbankapi.IsTransient(err) {
			t.Fatalf("err = %v, want a transient TransportError", err)
		}
	})
	t.Run("connection refused is transient", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		_, err := newClient(t, dead.URL).Session(ctx, "any")
		if !inbankapi.IsTransient(err) {
			t.Fatalf("err = %v, want transient", err)
		}
	})
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		wantMsg    string
	}{
		{"documented 403", `{"message": "User is not authorized to access this resource with an explicit deny"}`, 403, "User is not authorized to access this resource with an explicit deny"},
		{"documented 500", `{"message": "internal_server_error"}`, 500, "internal_server_error"},
		{"html", "<html><body>Bad Gateway</body></html>", 502, "<html><body>Bad Gateway</body></html>"},
		{"truncated json", `{"message": "inter`, 500, `{"message": "inter`},
		{"empty", "", 503, "service unavailable"},
		{"json without message", `{"error": 1}`, 400, `{"error": 1}`},
		{"long", strings.Repeat("x", 5000), 500, strings.Repeat("x", 200) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			_, err := newClient(t, srv.URL).Session(context.Background(), "s")
			var api *inbankapi.APIError
			if !errors.As(err, &api) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if api.Status != tt.status || api.Message != tt.wantMsg {
				t.Fatalf("got %d %q, want %d %q", api.Status, api.Message, tt.status, tt.wantMsg)
			}
		})
	}
}

func TestMalformedSuccessBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"uuid": 12`) }))
	defer srv.Close()
	_, err := newClient(t, srv.URL).Session(context.Background(), "s")
	if err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("err = %v, want a decode error", err)
	}
}

func TestAPIKeyNeverPrinted(t *testing.T) {
	const key = "sk-live-very-secret"
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.WriteHeader(500)
		fmt.Fprint(w, r.Header.Get("Authorization")) // a hostile server echoes the header
	}))
	defer srv.Close()
	cfg := inbank.Config{BaseURL: srv.URL, APIKey: key, ShopUUID: "shop"}
	c, err := inbank.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, callErr := c.Session(context.Background(), "s")
	if gotAuth != "Bearer "+key {
		t.Fatalf("Authorization = %q, want the Bearer key", gotAuth)
	}
	for _, s := range []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg.APIKey),
		fmt.Sprint(c), c.String(),
	} {
		if strings.Contains(s, key) {
			t.Errorf("key printed in %q", s)
		}
	}
	// The echoed body is the server's doing; the client's own text must not add the key.
	if strings.Count(callErr.Error(), key) > 1 {
		t.Errorf("error repeats the key: %v", callErr)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  inbank.Config
	}{
		{"no base", inbank.Config{APIKey: "k", ShopUUID: "s"}},
		{"relative base", inbank.Config{BaseURL: "inbank.ee", APIKey: "k", ShopUUID: "s"}},
		{"base with /partner/v3", inbank.Config{BaseURL: "https://demo.inbank.ee/partner/v3", APIKey: "k", ShopUUID: "s"}},
		{"no key", inbank.Config{BaseURL: "https://x", ShopUUID: "s"}},
		{"no shop", inbank.Config{BaseURL: "https://x", APIKey: "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := inbank.New(tt.cfg); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestBaseURLPrefixIsKept(t *testing.T) {
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		fmt.Fprint(w, `{"uuid":"s","status":"pending"}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/gateway/")
	if _, err := c.Session(context.Background(), "s-1"); err != nil {
		t.Fatal(err)
	}
	if want := "/gateway/partner/v3/shops/" + inbanktest.DefaultShopUUID + "/pos-sessions/s-1"; gotPath != want {
		t.Fatalf("path = %q, want %q", gotPath, want)
	}
}

func TestMetricsByOperationAndCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := inbank.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, srv := inbanktest.NewServer(t, inbanktest.Config{})
	c := newClient(t, srv.URL, inbank.WithMetrics(m))
	c.Session(context.Background(), "3f1c7e1e-0000-4000-8000-000000000001")
	c.RentalConditions(context.Background(), inbanktest.DefaultProductCode, inbankapi.ModelIdentifierEAN, inbanktest.EANPhone)
	want := `
# HELP smartrent_inbank_requests_total Requests to the Inbank API by shop, operation and HTTP status code ("error" when no answer came).
# TYPE smartrent_inbank_requests_total counter
smartrent_inbank_requests_total{code="200",operation="get_rental_conditions",shop="default"} 1
smartrent_inbank_requests_total{code="404",operation="get_session",shop="default"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartrent_inbank_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "smartrent_inbank_request_duration_seconds"); n != 2 {
		t.Fatalf("latency series = %d, want 2 (one per operation)", n)
	}
}

// TestRedirectsNotFollowed: a redirect, to another host or the same one,
// is never followed, so the API key never reaches another server; the 3xx
// is a permanent error. Also through a caller's own http.Client.
func TestRedirectsNotFollowed(t *testing.T) {
	const key = "sk-live-redirect-secret"
	var elsewhere, again int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere++
		if strings.Contains(r.Header.Get("Authorization"), key) {
			t.Errorf("the key reached another host")
		}
	}))
	defer other.Close()
	for _, target := range []string{other.URL + "/steal", "/partner/v3/again"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/partner/v3/again" {
				again++
				return
			}
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		}))
		for _, opts := range [][]inbank.Option{nil, {inbank.WithHTTPClient(&http.Client{})}} {
			c, err := inbank.New(inbank.Config{BaseURL: srv.URL, APIKey: key, ShopUUID: "shop"}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Session(context.Background(), "s")
			var apiErr *inbankapi.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect || inbankapi.IsTransient(err) {
				t.Fatalf("redirect to %s: err = %v, want a permanent 307 APIError", target, err)
			}
		}
		srv.Close()
	}
	if elsewhere != 0 || again != 0 {
		t.Fatalf("redirects followed: %d to another host, %d on the same", elsewhere, again)
	}
}
