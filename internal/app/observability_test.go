package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.yaml.in/yaml/v3"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

var metricName = regexp.MustCompile(`\bsmartrent_[a-z_]+`)

// TestDashboardAndAlertsUseExportedMetrics lints what both binaries export
// and checks that every metric the dashboard and the alert rules name is
// among it.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br := make(chan BridgeStarted, 1)
	done := make(chan error, 2)
	go func() { done <- RunBridge(ctx, nil, func(k string) string { return w.env[k] }, io.Discard, br) }()
	bs := <-br
	ing := make(chan IngressStarted, 1)
	ingEnv := map[string]string{"NATS_URL": w.env["NATS_URL"], "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error"}
	go func() { done <- RunIngress(ctx, nil, func(k string) string { return ingEnv[k] }, io.Discard, ing) }()
	is := <-ing
	// Exercise the paths so labelled series exist: one order to activation, one callback.
	w.place("OBS-1", 500)
	w.fake.Sign(w.sessionOf("OBS-1"))
	w.ship("OBS-1", imei)
	w.deliver("OBS-1")
	w.out.wait("OBS-1", events.TypeContractActivated, 1)
	http.Post("http://"+is.Callbacks.String()+"/v1/inbank/callbacks/x", "application/json", strings.NewReader("{}"))
	// Open orders by state are set by the next reconciliation pass of the
	// bridge holding the lease (here the only one).
	w.out.waitUntil(10*time.Second, func() bool {
		return bytes.Contains(scrape(t, bs.Ops.String()), []byte(`smartrent_orders{state="pending"} 0`))
	})

	exported := map[string]bool{}
	for _, addr := range []string{bs.Ops.String(), is.Ops.String()} {
		text := scrape(t, addr)
		problems, err := promlint.New(bytes.NewReader(text)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if strings.HasPrefix(p.Metric, "smartrent_") {
				t.Errorf("lint %s: %s", p.Metric, p.Text)
			}
		}
		for _, m := range metricName.FindAllString(string(text), -1) {
			exported[m] = true
		}
	}

	var used []string
	raw, err := os.ReadFile("../../deploy/observability/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			used = append(used, metricName.FindAllString(tg.Expr, -1)...)
		}
	}
	raw, err = os.ReadFile("../../deploy/observability/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil || len(rules.Groups) == 0 {
		t.Fatalf("alerts.yaml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule without name or expression: %+v", r)
			}
			used = append(used, metricName.FindAllString(r.Expr, -1)...)
		}
	}
	slices.Sort(used)
	for _, m := range slices.Compact(used) {
		if !exported[m] {
			t.Errorf("%s is used by the dashboard or the alerts but not exported", m)
		}
	}
	cancel()
	<-done
	<-done
}
