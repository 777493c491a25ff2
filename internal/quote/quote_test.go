package quote_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/quote"
	"github.com/smartrent-bridge/bridge/internal/ttlcache"
	"github.com/smartrent-bridge/bridge/schemas"
)

type env struct {
	nc   *nats.Conn
	fake *inbanktest.Fake
	svc  micro.Service
	reg  *prometheus.Registry
}

func setup(t testing.TB, timeout time.Duration) *env {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	nc, _ := natstest.Connect(t, srv.ClientURL())
	fake, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	client, err := inbank.New(inbank.Config{BaseURL: inbankSrv.URL, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cm, _ := ttlcache.NewMetrics(reg)
	s, err := quote.New(quote.Config{
		Inbank: client, Conditions: inbank.NewConditions(client, ttlcache.New[inbankapi.RentalConditions]("conditions", time.Minute, 100, 5*time.Second, cm)),
		DefaultProductCode: inbanktest.DefaultProductCode, Timeout: timeout, Schemas: schemas.MustLoad(), Cache: cm, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := s.Register(nc, "0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return &env{nc: nc, fake: fake, svc: svc, reg: reg}
}

type reply struct {
	code string
	desc string
	body map[string]any
}

func (e *env) ask(t testing.TB, subject, body string) reply {
	t.Helper()
	m, err := e.nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{code: m.Header.Get(micro.ErrorCodeHeader), desc: m.Header.Get(micro.ErrorHeader)}
	if err := json.Unmarshal(m.Data, &r.body); err != nil {
		t.Fatalf("reply is not a JSON object: %s", m.Data)
	}
	return r
}

const phone = `"heroDevice":{"modelId":"apple-iphone-16-128gb","modelName":"iPhone","netPrice":799,"identifierType":"EAN","identifier":"0195949821899"}`

func TestConditions(t *testing.T) {
	e := setup(t, 5*time.Second)
	r := e.ask(t, quote.SubjectConditions, `{"identifierType":"EAN","identifier":"0195949821899"}`)
	if r.code != "" || r.body["id"] != inbanktest.ModelPhone || r.body["insuranceRequirement"] != "INSURANCE_OPTIONAL" {
		t.Fatalf("reply = %+v", r)
	}
	r = e.ask(t, quote.SubjectConditions, `{"identifierType":"EAN","identifier":"4006381333931"}`)
	if r.code != "404" || r.body["reason"] != "MODEL_NOT_RENTABLE" {
		t.Fatalf("unknown model: %+v", r)
	}
	r = e.ask(t, quote.SubjectConditions, `{"identifierType":"SKU","identifier":"1"}`)
	if r.code != "400" || !strings.Contains(r.desc, "/identifierType") {
		t.Fatalf("bad type: %+v", r)
	}
}

func TestQuote(t *testing.T) {
	e := setup(t, 5*time.Second)
	r := e.ask(t, quote.SubjectQuote, `{"period":24,`+phone+`}`)
	if r.code != "" || r.body["grossMonthlyPayment"] != 42.02 || r.body["period"] != 24.0 {
		t.Fatalf("reply = %+v", r)
	}
	if assets, _ := r.body["assets"].([]any); len(assets) != 1 || assets[0].(map[string]any)["residualValue"] != 239.7 {
		t.Fatalf("assets = %v", r.body["assets"])
	}
}

func TestQuoteErrors(t *testing.T) {
	e := setup(t, 5*time.Second)
	tests := []struct {
		name, body, code, reason, inDesc string
	}{
		{"not JSON", `{`, "400", "INVALID_ORDER", "not JSON"},
		{"missing period", `{` + phone + `}`, "400", "INVALID_ORDER", "period"},
		{"bad price", `{"period":24,"heroDevice":{"modelId":"m","netPrice":-1}}`, "400", "INVALID_ORDER", "/heroDevice/netPrice"},
		{"unknown shop", `{"shop":"lv-web","period":24,` + phone + `}`, "400", "INVALID_ORDER", "lv-web"},
		{"period 48", `{"period":48,` + phone + `}`, "422", "PERIOD_NOT_OFFERED", "48"},
		{"too expensive", `{"period":24,"heroDevice":{"modelId":"apple-iphone-16-128gb","netPrice":9000,"identifierType":"EAN","identifier":"0195949821899"}}`, "422", "PRICE_OUT_OF_LIMITS", "9000"},
		{"insurance required", `{"period":24,"insuranceUsed":false,"heroDevice":{"modelId":"samsung-galaxy-tab-s10","netPrice":600,"identifierType":"EAN","identifier":"8806095754612"}}`, "422", "INSURANCE_REQUIRED", "insurance"},
		{"unknown model", `{"period":24,"heroDevice":{"modelId":"x","netPrice":500,"identifierType":"EAN","identifier":"4006381333931"}}`, "404", "MODEL_NOT_RENTABLE", ""},
		{"unknown model without identifier", `{"period":24,"heroDevice":{"modelId":"nokia-3310","netPrice":500}}`, "404", "MODEL_NOT_RENTABLE", ""},
		{"Inbank refuses", `{"period":24,"heroDevice":{"modelId":"apple-iphone-16-128gb","netPrice":9000}}`, "422", quote.ReasonNotEligible, "limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.ask(t, quote.SubjectQuote, tt.body)
			if r.code != tt.code || r.body["reason"] != tt.reason || !strings.Contains(r.desc, tt.inDesc) {
				t.Fatalf("got %s %v %q, want %s %s containing %q", r.code, r.body["reason"], r.desc, tt.code, tt.reason, tt.inDesc)
			}
			if r.body["code"] != json.Number(tt.code) && fmt.Sprint(r.body["code"]) != tt.code {
				t.Fatalf("body code = %v", r.body["code"])
			}
		})
	}
	t.Run("Inbank unavailable", func(t *testing.T) {
		e.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Status: 503})
		defer e.fake.ClearFaults()
		r := e.ask(t, quote.SubjectQuote, `{"period":12,`+phone+`}`)
		if r.code != "503" || r.body["reason"] != quote.ReasonUnavailable {
			t.Fatalf("reply = %+v", r)
		}
	})
}

func TestQuoteDeadline(t *testing.T) {
	e := setup(t, 200*time.Millisecond)
	e.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Latency: inbanktest.Duration(2 * time.Second)})
	start := time.Now()
	r := e.ask(t, quote.SubjectQuote, `{"period":24,`+phone+`}`)
	if r.code != "504" || r.body["reason"] != quote.ReasonDeadline {
		t.Fatalf("reply = %+v", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("answered after %v, deadline 200ms", d)
	}
}

func TestBatch(t *testing.T) {
	e := setup(t, 5*time.Second)
	r := e.ask(t, quote.SubjectQuoteBatch, `{"quotes":[{"period":24,`+phone+`},{"period":48,`+phone+`},{"period":36,"heroDevice":{"modelId":"m"}}]}`)
	results, _ := r.body["results"].([]any)
	if r.code != "" || len(results) != 3 {
		t.Fatalf("reply = %+v", r)
	}
	first, second, third := results[0].(map[string]any), results[1].(map[string]any), results[2].(map[string]any)
	if q, _ := first["quote"].(map[string]any); q["period"] != 24.0 {
		t.Fatalf("first = %v", first)
	}
	if er, _ := second["error"].(map[string]any); er["reason"] != "PERIOD_NOT_OFFERED" || er["code"] != 422.0 {
		t.Fatalf("second = %v", second)
	}
	if er, _ := third["error"].(map[string]any); er["code"] != 400.0 || !strings.Contains(er["message"].(string), "netPrice") {
		t.Fatalf("third = %v", third)
	}
	for _, n := range []int{0, 51} {
		items := strings.TrimSuffix(strings.Repeat(`{"period":24,`+phone+`},`, n), ",")
		r := e.ask(t, quote.SubjectQuoteBatch, `{"quotes":[`+items+`]}`)
		if r.code != "400" || !strings.Contains(r.desc, "1 to 50") {
			t.Fatalf("batch of %d: %+v", n, r)
		}
	}
}

func TestBatchDeadlineAnswersWhatIsReady(t *testing.T) {
	e := setup(t, 300*time.Millisecond)
	// Warm the cache for one request; the other meets a slow Inbank.
	e.ask(t, quote.SubjectQuote, `{"period":24,`+phone+`}`)
	e.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Latency: inbanktest.Duration(3 * time.Second)})
	start := time.Now()
	r := e.ask(t, quote.SubjectQuoteBatch, `{"quotes":[{"period":24,`+phone+`},{"period":36,`+phone+`}]}`)
	results, _ := r.body["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("reply = %+v", r)
	}
	if _, ok := results[0].(map[string]any)["quote"]; !ok {
		t.Fatalf("cached item: %v", results[0])
	}
	if er, _ := results[1].(map[string]any)["error"].(map[string]any); er["code"] != 504.0 {
		t.Fatalf("slow item: %v", results[1])
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("batch took %v with a 300ms deadline", d)
	}
}

func TestCache(t *testing.T) {
	e := setup(t, 5*time.Second)
	e.ask(t, quote.SubjectQuote, `{"period":24,`+phone+`}`)
	calls, conds := e.fake.Calls(inbank.OpCalculate), e.fake.Calls(inbank.OpGetRentalConditions)
	e.ask(t, quote.SubjectQuote, `{"period":24,`+phone+`}`)
	if e.fake.Calls(inbank.OpCalculate) != calls || e.fake.Calls(inbank.OpGetRentalConditions) != conds {
		t.Fatal("an identical quote called Inbank again")
	}
	// 100 concurrent identical misses: one calculation.
	e.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Latency: inbanktest.Duration(200 * time.Millisecond)})
	before := e.fake.Calls(inbank.OpCalculate)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if r := e.ask(t, quote.SubjectQuote, `{"period":36,`+phone+`}`); r.code != "" {
				t.Errorf("reply = %+v", r)
			}
		})
	}
	wg.Wait()
	if got := e.fake.Calls(inbank.OpCalculate) - before; got != 1 {
		t.Fatalf("%d calculations for 100 identical concurrent requests", got)
	}
	mfs, _ := e.reg.Gather()
	hits := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "smartrent_cache_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "result" && l.GetValue() == "hit" {
					hits += m.Counter.GetValue()
				}
			}
		}
	}
	if hits == 0 {
		t.Fatal("no cache hits counted")
	}
}

func TestServiceInfo(t *testing.T) {
	e := setup(t, 5*time.Second)
	info := e.svc.Info()
	if info.Name != "smartrent" || len(info.Endpoints) != 3 {
		t.Fatalf("info = %+v", info)
	}
	subjects := map[string]bool{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = true
	}
	for _, s := range []string{quote.SubjectConditions, quote.SubjectQuote, quote.SubjectQuoteBatch} {
		if !subjects[s] {
			t.Errorf("no endpoint on %s", s)
		}
	}
	// `nats micro ls` asks $SRV.PING; `nats micro info smartrent` asks $SRV.INFO.smartrent.
	m, err := e.nc.Request("$SRV.INFO.smartrent", nil, 5*time.Second)
	if err != nil || !strings.Contains(string(m.Data), `"smartrent.quote.batch"`) {
		t.Fatalf("$SRV.INFO: %v %s", err, m.Data)
	}
}

// BenchmarkQuote reports the latency of a cached and an uncached quote
// through NATS request-reply (the fake Inbank answers at once: the
// uncached figure is the bridge's and the loopback HTTP's own cost).
func BenchmarkQuote(b *testing.B) {
	e := setup(b, 5*time.Second)
	b.Run("cached", func(b *testing.B) {
		body := []byte(`{"period":24,` + phone + `}`)
		e.nc.Request(quote.SubjectQuote, body, 5*time.Second)
		for b.Loop() {
			if _, err := e.nc.Request(quote.SubjectQuote, body, 5*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			body := fmt.Appendf(nil, `{"period":24,"heroDevice":{"modelId":"apple-iphone-16-128gb","netPrice":%d.5,"identifierType":"EAN","identifier":"0195949821899"}}`, 100+i%1800)
			if _, err := e.nc.Request(quote.SubjectQuote, body, 5*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
