// Package observability holds the Prometheus alert rules and the Grafana
// dashboard; its tests prove every alert with promtool's rule unit tests.
package observability

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promtool is Prometheus's rule checker and unit tester.
const promtool = "github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

// runbooks is where every alert's runbook_url points.
const runbooks = "https://github.com/smartrent-bridge/bridge/blob/main/docs/runbooks.md"

func promtoolBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "smartrent-promtool-v0.316.0")
	bin := filepath.Join(dir, "promtool")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", promtool)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install %s: %v\n%s", promtool, err, out)
	}
	return bin
}

// TestAlertRules runs `promtool check rules` and `promtool test rules`:
// each alert fires on series that show its problem and stays silent on
// healthy ones (alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	bin := promtoolBinary(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert, Expr, For string
			Annotations      map[string]string
		}
	}
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	}
}

// TestEveryAlertIsTestedScopedAndHasARunbook: every alert has a unit test
// where it fires and one where it stays silent, a runbook section linked
// by runbook_url, a description, and selectors that name their job with
// aggregations that keep the namespace.
func TestEveryAlertIsTestedScopedAndHasARunbook(t *testing.T) {
	var rules ruleFile
	var tests ruleTests
	for file, v := range map[string]any{"alerts.yaml": &rules, "alerts_test.yaml": &tests} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	book, err := os.ReadFile("../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	selector := regexp.MustCompile(`\b(smartrent_[a-z_]+|up)\{([^}]*)\}`)
	bare := regexp.MustCompile(`\b(smartrent_[a-z_]+|up)\b[^{_a-z]`)
	by := regexp.MustCompile(`\bby \(([^)]*)\)`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("%s: a unit test where it fires %v, one where it stays silent %v; want both", r.Alert, fires[r.Alert], silent[r.Alert])
			}
			if want := runbooks + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(string(book), "\n## "+r.Alert+"\n") {
				t.Errorf("%s: no section in docs/runbooks.md", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are both needed", r.Alert)
			}
			for _, m := range selector.FindAllStringSubmatch(r.Expr, -1) {
				if !regexp.MustCompile(`\bjob="smartrent-(bridge|webhook-ingress)"`).MatchString(m[2]) {
					t.Errorf("%s: %s selects no job: two releases or other exporters would merge", r.Alert, m[0])
				}
			}
			if m := bare.FindString(r.Expr + " "); m != "" {
				t.Errorf("%s: %q has no selector", r.Alert, m)
			}
			for _, m := range by.FindAllStringSubmatch(r.Expr, -1) {
				if !slices.Contains(strings.Split(strings.ReplaceAll(m[1], " ", ""), ","), "namespace") {
					t.Errorf("%s: %s drops the namespace", r.Alert, m[0])
				}
			}
			if strings.Contains(r.Expr, "absent(") && !strings.Contains(r.Expr, "by (namespace") {
				t.Errorf("%s: absent() alone cannot tell namespaces apart; pair it with a per-namespace term", r.Alert)
			}
		}
	}
	if n < 13 {
		t.Fatalf("%d alerts", n)
	}
}

// TestDashboardQueries: every query of dashboard.json parses (promtool's
// PromQL parser, the variables filled in) and selects its namespace and
// job, so two releases in one Prometheus draw apart.
func TestDashboardQueries(t *testing.T) {
	bin := promtoolBinary(t)
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct{ List []struct{ Name string } }
		Panels     []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"datasource", "namespace", "bridge", "ingress"} {
		if !slices.ContainsFunc(dash.Templating.List, func(x struct{ Name string }) bool { return x.Name == v }) {
			t.Errorf("no dashboard variable %q", v)
		}
	}
	fill := strings.NewReplacer("$namespace", "rentals", "$bridge", "smartrent-bridge", "$ingress", "smartrent-webhook-ingress")
	selector := regexp.MustCompile(`\b(smartrent_[a-z_]+)\{([^}]*)\}`)
	n := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			n++
			if out, err := exec.Command(bin, "--experimental", "promql", "format", fill.Replace(target.Expr)).CombinedOutput(); err != nil {
				t.Errorf("%s: %q does not parse: %s", p.Title, target.Expr, out)
			}
			sels := selector.FindAllStringSubmatch(target.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("%s: %q selects no smartrent metric", p.Title, target.Expr)
			}
			for _, m := range sels {
				if !strings.Contains(m[2], `namespace="$namespace"`) {
					t.Errorf("%s: %s is not scoped to $namespace", p.Title, m[0])
				}
			}
		}
	}
	if n < 18 {
		t.Errorf("%d dashboard queries", n)
	}
}
