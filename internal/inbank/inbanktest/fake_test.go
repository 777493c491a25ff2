package inbanktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// callbackSink records callbacks it receives.
type callbackSink struct {
	mu      sync.Mutex
	bodies  []inbanktest.CallbackBody
	headers []http.Header
	status  int
	arrived chan struct{}
}

func newSink(t *testing.T) (*callbackSink, string) {
	s := &callbackSink{status: 200, arrived: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b inbanktest.CallbackBody
		raw, _ := io.ReadAll(r.Body)
		json.Unmarshal(raw, &b)
		s.mu.Lock()
		status := s.status
		if status == 200 {
			s.bodies = append(s.bodies, b)
			s.headers = append(s.headers, r.Header.Clone())
		}
		s.mu.Unlock()
		w.WriteHeader(status)
		if status == 200 {
			s.arrived <- struct{}{}
		}
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL + "/cb"
}

func (s *callbackSink) statuses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.bodies {
		out = append(out, b.Status)
	}
	return out
}

func (s *callbackSink) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("callbacks: got %v, want %d", s.statuses(), n)
		}
	}
}

func client(t *testing.T, url string) *inbank.Client {
	c, err := inbank.New(inbank.Config{BaseURL: url, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func session(ref string, net float64, callbackURL string, validUntil time.Time) inbankapi.SessionRequest {
	r := inbankapi.SessionRequest{
		ProductCode: inbanktest.DefaultProductCode, Currency: "EUR", Locale: "et-EE",
		Purchase: inbankapi.Purchase{PurchaseReference: ref, Description: "rental"},
		RentalApplicationData: inbankapi.RentalApplicationData{Period: 12, Assets: []inbankapi.SessionAsset{
			{Type: inbankapi.AssetModelBased, ModelID: inbanktest.ModelPhone, ModelName: "iPhone", NetPrice: net},
		}},
		PartnerURLs: &inbankapi.PartnerURLs{ReturnURL: "https://shop.example/return", CancelURL: "https://shop.example/cancel", CallbackURL: callbackURL},
	}
	if !validUntil.IsZero() {
		r.ValidUntil = validUntil.Format(time.RFC3339)
	}
	return r
}

func TestCallbacksOnEveryStatusChange(t *testing.T) {
	sink, cbURL := newSink(t)
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Sign: true}})
	c := client(t, srv.URL)
	s, err := c.CreateSession(context.Background(), session("o1", 500, cbURL, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	fake.Sign(s.UUID)
	sink.wait(t, 1)
	if err := fake.PortalApprove(s.UUID); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, 1)
	if got, want := strings.Join(sink.statuses(), ","), "granted,completed"; got != want {
		t.Fatalf("callbacks = %s, want %s", got, want)
	}
	sink.mu.Lock()
	h, b := sink.headers[0], sink.bodies[0]
	sink.mu.Unlock()
	raw, _ := json.Marshal(b)
	if got, want := h.Get(inbanktest.HeaderSignature), inbanktest.Sign(inbanktest.DefaultAPIKey, h.Get(inbanktest.HeaderTimestamp), raw); got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
	if b.PosSessionUUID != s.UUID {
		t.Fatalf("callback session = %q, want %q", b.PosSessionUUID, s.UUID)
	}
}

func TestCallbackPolicies(t *testing.T) {
	t.Run("drop all", func(t *testing.T) {
		sink, cbURL := newSink(t)
		fake, srv := inbanktest.NewServer(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{DropRate: 1}})
		s, _ := client(t, srv.URL).CreateSession(context.Background(), session("o", 500, cbURL, time.Time{}))
		fake.Sign(s.UUID)
		fake.WaitCallbacks()
		if got := sink.statuses(); len(got) != 0 {
			t.Fatalf("callbacks = %v, want none", got)
		}
		if got := fake.CallbackStats().Dropped; got != 1 {
			t.Fatalf("dropped = %d, want 1", got)
		}
	})
	t.Run("duplicates and reorder", func(t *testing.T) {
		sink, cbURL := newSink(t)
		fake, srv := inbanktest.NewServer(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Duplicates: 2, Reorder: true, Delay: inbanktest.Duration(20 * time.Millisecond)}})
		s, _ := client(t, srv.URL).CreateSession(context.Background(), session("o", 500, cbURL, time.Time{}))
		fake.Sign(s.UUID)
		fake.PortalApprove(s.UUID)
		fake.WaitCallbacks()
		got := sink.statuses()
		n := map[string]int{}
		for _, st := range got {
			n[st]++
		}
		if n["granted"] != 3 || n["completed"] != 3 {
			t.Fatalf("callbacks = %v, want 3 granted and 3 completed", got)
		}
	})
	t.Run("retried until the receiver answers 2xx", func(t *testing.T) {
		sink, cbURL := newSink(t)
		sink.status = 503
		fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
		s, _ := client(t, srv.URL).CreateSession(context.Background(), session("o", 500, cbURL, time.Time{}))
		fake.Sign(s.UUID)
		for fake.CallbackStats().Attempts < 2 { // polling the fake's own counter
			time.Sleep(5 * time.Millisecond)
		}
		sink.mu.Lock()
		sink.status = 200
		sink.mu.Unlock()
		sink.wait(t, 1)
		fake.WaitCallbacks()
		// The status may change while the second attempt is under way:
		// at least one attempt was refused before the one that got 200.
		if st := fake.CallbackStats(); st.Sent != 1 || st.Attempts < 2 || st.Failed != 0 {
			t.Fatalf("stats = %+v, want 1 sent after at least 2 attempts", st)
		}
	})
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	c := client(t, srv.URL)
	status := func(uuid string) string {
		s, err := c.Session(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		return s.Status
	}
	t.Run("demo amounts 1001-1100 are declined", func(t *testing.T) {
		s, _ := c.CreateSession(ctx, session("d", 1050, "", time.Time{}))
		got, err := fake.Sign(s.UUID)
		if err != nil || got != inbankapi.SessionDeclined || status(s.UUID) != inbankapi.SessionDeclined {
			t.Fatalf("sign = %q, %v; want declined", got, err)
		}
		if _, err := fake.Sign(s.UUID); !errors.Is(err, inbanktest.ErrWrongStatus) {
			t.Fatalf("signing a declined session: %v, want ErrWrongStatus", err)
		}
	})
	t.Run("validUntil honoured", func(t *testing.T) {
		s, _ := c.CreateSession(ctx, session("e", 500, "", time.Now().Add(-time.Second)))
		if got := status(s.UUID); got != inbankapi.SessionExpired {
			t.Fatalf("status = %q, want expired", got)
		}
	})
	t.Run("cancel a granted session cancels its contract", func(t *testing.T) {
		s, _ := c.CreateSession(ctx, session("c", 500, "", time.Time{}))
		fake.Sign(s.UUID)
		if err := fake.Cancel(s.UUID); err != nil {
			t.Fatal(err)
		}
		got, _ := c.Session(ctx, s.UUID)
		k, _ := c.Contract(ctx, got.CreditContractUUID)
		if got.Status != inbankapi.SessionCancelled || k.Status != "cancelled" {
			t.Fatalf("session %q contract %q, want cancelled both", got.Status, k.Status)
		}
	})
	t.Run("identifier type must match the model", func(t *testing.T) {
		s, _ := c.CreateSession(ctx, session("i", 500, "", time.Time{}))
		fake.Sign(s.UUID)
		got, _ := c.Session(ctx, s.UUID)
		err := c.AssignAssetIdentifiers(ctx, inbanktest.DefaultProductCode, got.CreditContractUUID,
			inbankapi.AssetIdentifiersRequest{AssetIdentifiers: []inbankapi.AssetIdentifier{{Identifier: "C02X", IdentifierType: inbankapi.AssetIdentifierSerialNumber}}})
		if !errors.Is(err, inbankapi.ErrRejected) {
			t.Fatalf("serial number on an IMEI model: %v, want rejected", err)
		}
		if got := fake.IdentifierAssignments(got.CreditContractUUID); got != 1 {
			t.Fatalf("assignments counted = %d, want 1", got)
		}
	})
	t.Run("sessions counted by purchase reference", func(t *testing.T) {
		c.CreateSession(ctx, session("twice", 500, "", time.Time{}))
		c.CreateSession(ctx, session("twice", 500, "", time.Time{}))
		if got := fake.SessionsCreated("twice"); got != 2 {
			t.Fatalf("sessions = %d, want 2 (Inbank has no idempotency key)", got)
		}
	})
}

func TestFaultAfterEffect(t *testing.T) {
	ctx := context.Background()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 503, AfterEffect: true, Remaining: 1})
	_, err := client(t, srv.URL).CreateSession(ctx, session("lost-answer", 500, "", time.Time{}))
	if !inbankapi.IsTransient(err) {
		t.Fatalf("err = %v, want transient 503", err)
	}
	if got := fake.SessionsCreated("lost-answer"); got != 1 {
		t.Fatalf("sessions = %d, want 1: the call took effect before its answer was lost", got)
	}
}

func TestFaultRate(t *testing.T) {
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Status: 502, Rate: 0.5})
	c := client(t, srv.URL)
	failed := 0
	for range 200 {
		if _, err := c.Session(context.Background(), "x"); errors.Is(err, inbankapi.ErrUnavailable) {
			failed++
		}
	}
	if failed < 50 || failed > 150 {
		t.Fatalf("%d of 200 calls failed at rate 0.5", failed)
	}
}

func TestControlAPI(t *testing.T) {
	sink, cbURL := newSink(t)
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	s, _ := client(t, srv.URL).CreateSession(context.Background(), session("ctl", 500, cbURL, time.Time{}))
	post := func(path, body string) *http.Response {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("/sandbox/sessions/"+s.UUID+"/sign", ""); r.StatusCode != 200 {
		t.Fatalf("sign: %d", r.StatusCode)
	}
	if r := post("/sandbox/sessions/"+s.UUID+"/expire", ""); r.StatusCode != http.StatusConflict {
		t.Fatalf("expire a granted session: %d, want 409", r.StatusCode)
	}
	if r := post("/sandbox/sessions/"+s.UUID+"/portal-approve", `[{"identifier":"356938035643809","identifierType":"IMEI"}]`); r.StatusCode != 200 {
		t.Fatalf("portal-approve: %d", r.StatusCode)
	}
	if r := post("/sandbox/sessions/nope/sign", ""); r.StatusCode != 404 {
		t.Fatalf("unknown session: %d", r.StatusCode)
	}
	resp, err := http.Get(srv.URL + "/sandbox/sessions?purchaseReference=ctl")
	if err != nil {
		t.Fatal(err)
	}
	var infos []inbanktest.SessionInfo
	json.NewDecoder(resp.Body).Decode(&infos)
	resp.Body.Close()
	if len(infos) != 1 || infos[0].Status != inbankapi.SessionCompleted || infos[0].ContractStatus != inbankapi.ContractActivated || infos[0].Identifiers[0].Identifier != "356938035643809" {
		t.Fatalf("sessions = %+v", infos)
	}
	sink.wait(t, 2)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/sandbox/faults/get_session", strings.NewReader(`{"status":503,"remaining":1,"latency":"1ms"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("set fault: %v %v", resp, err)
	}
	if _, err := client(t, srv.URL).Session(context.Background(), s.UUID); !errors.Is(err, inbankapi.ErrUnavailable) {
		t.Fatalf("after fault set over HTTP: %v, want 503", err)
	}
	if got := fake.Calls(inbank.OpGetSession); got != 1 {
		t.Fatalf("get_session calls = %d, want 1", got)
	}
}

func TestCustomerPageButtons(t *testing.T) {
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	created, _ := client(t, srv.URL).CreateSession(context.Background(), session("page", 500, "", time.Time{}))
	resp, err := http.Get(created.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"page", `id="sign"`, `id="cancel"`, "EUR</b> a month"} {
		if !strings.Contains(string(page), want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Post(srv.URL+"/session/"+created.UUID+"/cancel", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Location"); got != "https://shop.example/cancel" {
		t.Fatalf("cancel redirects to %q, want the cancelUrl", got)
	}
	if infos := fake.Sessions("page"); infos[0].Status != inbankapi.SessionCancelled {
		t.Fatalf("status = %q, want cancelled", infos[0].Status)
	}
}
