package charttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "../smartrent-bridge"
	repoRoot = "../../.."
)

// required are the values without defaults: the chart refuses to render
// without them.
func required() map[string]any {
	return map[string]any{
		"inbank":          map[string]any{"baseUrl": "https://partner.inbank.example", "shopUuid": "a93f1f44-d5dd-4469-bfcc-c1de9e969213"},
		"callbackBaseUrl": "https://callbacks.shop.example",
		"secrets":         map[string]any{"existingSecret": "smartrent-secrets"},
	}
}

// rendered is a rendered release: objects by kind and name.
type rendered struct {
	docs map[string]map[string][]byte // kind → name → YAML
}

func render(t *testing.T, values map[string]any) rendered {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "shop", Namespace: "rentals", Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{docs: map[string]map[string][]byte{}}
	for name, content := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(content, -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				Kind     string
				Metadata struct{ Name string }
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if r.docs[meta.Kind] == nil {
				r.docs[meta.Kind] = map[string][]byte{}
			}
			r.docs[meta.Kind][meta.Metadata.Name] = []byte(doc)
		}
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// get decodes one object strictly: a field the Kubernetes type does not
// have fails the test (the API server would drop or refuse it).
func get[T any](t *testing.T, r rendered, kind, name string) *T {
	t.Helper()
	doc, ok := r.docs[kind][name]
	if !ok {
		t.Fatalf("no %s %q rendered (have %v)", kind, name, names(r))
	}
	v := new(T)
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	return v
}

func names(r rendered) []string {
	var out []string
	for kind, byName := range r.docs {
		for n := range byName {
			out = append(out, kind+"/"+n)
		}
	}
	slices.Sort(out)
	return out
}

func merge(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				dst[k] = merge(d, sub)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			out[e.Name] = "<from>"
			continue
		}
		out[e.Name] = e.Value
	}
	return out
}

// settings are the environment variables a binary reads, from its --help.
func settings(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	c := exec.Command("go", "run", "./cmd/"+cmd, "--help")
	c.Dir = repoRoot
	out, _ := c.CombinedOutput() // --help exits 0 and prints to stderr
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]] = true
	}
	if len(got) < 10 {
		t.Fatalf("%s --help listed %d settings:\n%s", cmd, len(got), out)
	}
	return got
}

// checkPod checks what every pod of the chart must have.
func checkPod(t *testing.T, d *appsv1.Deployment, binary string, known map[string]bool, mounts map[string]string) corev1.Container {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	sel, err := metaSelector(d)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: selector does not match the pod labels", d.Name)
	}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/" + binary}) {
		t.Errorf("%s: command %q", d.Name, c.Command)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("%s: replicas %v, want 2 or more", d.Name, d.Spec.Replicas)
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod must run as non-root: %+v", d.Name, psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: container security context %+v", d.Name, sc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: service account token mounted; the binaries never call the Kubernetes API", d.Name)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v", d.Name, c.Resources)
	}
	e := env(c)
	metricsPort := containerPort(c, "metrics")
	if e["METRICS_ADDR"] != fmt.Sprintf(":%d", metricsPort) {
		t.Errorf("%s: METRICS_ADDR %q but the metrics port is %d", d.Name, e["METRICS_ADDR"], metricsPort)
	}
	for probe, want := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s: want a probe on %s at the metrics port, got %+v", d.Name, want, probe)
		}
	}
	// Shutdown fits the grace period: readiness off, SHUTDOWN_DELAY,
	// then SHUTDOWN_TIMEOUT for work in flight, with room to spare.
	delay, err1 := time.ParseDuration(e["SHUTDOWN_DELAY"])
	timeout, err2 := time.ParseDuration(e["SHUTDOWN_TIMEOUT"])
	if err1 != nil || err2 != nil || delay <= 0 || timeout <= 0 {
		t.Errorf("%s: SHUTDOWN_DELAY %q SHUTDOWN_TIMEOUT %q", d.Name, e["SHUTDOWN_DELAY"], e["SHUTDOWN_TIMEOUT"])
	}
	if grace := spec.TerminationGracePeriodSeconds; grace == nil || time.Duration(*grace)*time.Second < delay+timeout+5*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want ≥ SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT + 5 s = %v", d.Name, grace, delay+timeout+5*time.Second)
	}
	// Secrets only as files: no secret value in the environment; every
	// _FILE names a file under a mounted secret volume.
	for name, value := range e {
		if !known[name] && !known[strings.TrimSuffix(name, "_FILE")] {
			t.Errorf("%s: %s is not a setting of %s", d.Name, name, binary)
		}
		switch name {
		case "INBANK_API_KEY", "CALLBACK_SECRET", "NATS_PASSWORD":
			t.Errorf("%s: %s in the environment; mount it and use %s_FILE", d.Name, name, name)
		}
		if strings.HasSuffix(name, "_FILE") || name == "NATS_CREDS" {
			dir := filepath.Dir(value)
			secret, ok := mounts[dir]
			if !ok {
				t.Errorf("%s: %s=%s is not in a mounted secret (mounts %v)", d.Name, name, value, mounts)
				continue
			}
			if !volumeFromSecret(spec, c, dir, secret) {
				t.Errorf("%s: %s is not mounted read-only from Secret %s", d.Name, dir, secret)
			}
		}
	}
	return c
}

func metaSelector(d *appsv1.Deployment) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func volumeFromSecret(spec corev1.PodSpec, c corev1.Container, dir, secret string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir || !m.ReadOnly {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == secret {
				return true
			}
		}
	}
	return false
}

func checkPDB(t *testing.T, pdb *policyv1.PodDisruptionBudget, d *appsv1.Deployment) {
	t.Helper()
	sel, err := labels.ValidatedSelectorFromSet(pdb.Spec.Selector.MatchLabels)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("PDB %s does not select %s's pods", pdb.Name, d.Name)
	}
	if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		t.Errorf("PDB %s: no budget", pdb.Name)
	}
	if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("PDB %s: minAvailable %s blocks every eviction of %d replicas", pdb.Name, pdb.Spec.MinAvailable, *d.Spec.Replicas)
	}
}

// TestDefaultValues renders the chart with only the required values and
// checks the invariants on the rendered objects.
func TestDefaultValues(t *testing.T) {
	r := render(t, required())
	mounts := map[string]string{"/etc/smartrent/secrets": "smartrent-secrets"}

	bridge := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-bridge")
	c := checkPod(t, bridge, "bridge", settings(t, "bridge"), mounts)
	e := env(c)
	for k, want := range map[string]string{
		"INBANK_BASE_URL": "https://partner.inbank.example", "CALLBACK_BASE_URL": "https://callbacks.shop.example",
		"NATS_REPLICAS": "3", "PROVISION": "false", "INBANK_API_KEY_FILE": "/etc/smartrent/secrets/inbank-api-key",
		"CALLBACK_SECRET_FILE": "/etc/smartrent/secrets/callback-secret",
	} {
		if e[k] != want {
			t.Errorf("bridge %s = %q, want %q", k, e[k], want)
		}
	}
	if c.Image != "ghcr.io/smartrent-bridge/smartrent-bridge:0.1.0" {
		t.Errorf("image %q", c.Image)
	}
	checkPDB(t, get[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", "shop-smartrent-bridge-bridge"), bridge)

	ingress := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-webhook-ingress")
	ic := checkPod(t, ingress, "webhook-ingress", settings(t, "webhook-ingress"), mounts)
	if env(ic)["LISTEN_ADDR"] != fmt.Sprintf(":%d", containerPort(ic, "http")) {
		t.Errorf("ingress LISTEN_ADDR %q vs http port %d", env(ic)["LISTEN_ADDR"], containerPort(ic, "http"))
	}
	checkPDB(t, get[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", "shop-smartrent-bridge-webhook-ingress"), ingress)
	svc := get[corev1.Service](t, r, "Service", "shop-smartrent-bridge-webhook-ingress")
	if sel, _ := labels.ValidatedSelectorFromSet(svc.Spec.Selector); !sel.Matches(labels.Set(ingress.Spec.Template.Labels)) {
		t.Error("the ingress Service does not select the ingress pods")
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("the ingress's Service (it may face the internet) exposes %v, want only http", svc.Spec.Ports)
	}
	if m := get[corev1.Service](t, r, "Service", "shop-smartrent-bridge-webhook-ingress-metrics"); m.Spec.Type != corev1.ServiceTypeClusterIP || m.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("the ingress's metrics Service: %s %v", m.Spec.Type, m.Spec.Ports)
	}
	for _, kind := range []string{"Ingress", "Secret", "ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if len(r.docs[kind]) > 0 {
			t.Errorf("%s rendered by default", kind)
		}
	}
	sa := get[corev1.ServiceAccount](t, r, "ServiceAccount", "shop-smartrent-bridge")
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("service account mounts its token")
	}
	for _, d := range []*appsv1.Deployment{bridge, ingress} {
		s := d.Spec.Template.Spec
		c := s.Containers[0]
		t.Logf("%s: replicas %d, command %q, grace %ds, readiness %s liveness %s on %q, runAsNonRoot %v uid %d, readOnlyRootFilesystem %v, requests %s/%s limit %s, SHUTDOWN_DELAY %s SHUTDOWN_TIMEOUT %s",
			d.Name, *d.Spec.Replicas, c.Command, *s.TerminationGracePeriodSeconds, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Port.String(),
			*s.SecurityContext.RunAsNonRoot, *s.SecurityContext.RunAsUser, *c.SecurityContext.ReadOnlyRootFilesystem,
			c.Resources.Requests.Cpu(), c.Resources.Requests.Memory(), c.Resources.Limits.Memory(), env(c)["SHUTDOWN_DELAY"], env(c)["SHUTDOWN_TIMEOUT"])
	}
	t.Logf("rendered: %v", names(r))
}

// TestOtherValues: a trial Secret, NATS user and credentials, PROVISION
// off (NACK), the Ingress, the monitoring objects and longer shutdown.
func TestOtherValues(t *testing.T) {
	values := merge(required(), map[string]any{
		"secrets":  map[string]any{"existingSecret": "", "create": true, "inbankApiKey": "k", "callbackSecret": "s", "natsPassword": "p"},
		"nats":     map[string]any{"provision": false, "replicas": 1, "user": "bridge", "credentials": map[string]any{"existingSecret": "nats-creds"}},
		"shutdown": map[string]any{"delaySeconds": 10, "timeoutSeconds": 50},
		"bridge":   map[string]any{"replicas": 3, "env": map[string]any{"RECONCILE_INTERVAL": "30s"}},
		"webhookIngress": map[string]any{"ingress": map[string]any{
			"enabled": true, "className": "nginx", "host": "callbacks.shop.example",
			"tls": []any{map[string]any{"hosts": []any{"callbacks.shop.example"}, "secretName": "callbacks-tls"}},
		}},
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}, "dashboard": map[string]any{"enabled": true}},
		"image":   map[string]any{"tag": "v1.2.3"},
	})
	r := render(t, values)
	mounts := map[string]string{"/etc/smartrent/secrets": "shop-smartrent-bridge-secrets", "/etc/smartrent/nats": "nats-creds"}
	bridge := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-bridge")
	c := checkPod(t, bridge, "bridge", settings(t, "bridge"), mounts)
	e := env(c)
	for k, want := range map[string]string{
		"PROVISION": "false", "NATS_REPLICAS": "1", "NATS_USER": "bridge", "NATS_PASSWORD_FILE": "/etc/smartrent/secrets/nats-password",
		"NATS_CREDS": "/etc/smartrent/nats/nats.creds", "RECONCILE_INTERVAL": "30s", "SHUTDOWN_DELAY": "10s", "SHUTDOWN_TIMEOUT": "50s",
	} {
		if e[k] != want {
			t.Errorf("bridge %s = %q, want %q", k, e[k], want)
		}
	}
	if *bridge.Spec.Template.Spec.TerminationGracePeriodSeconds != 70 || c.Image != "ghcr.io/smartrent-bridge/smartrent-bridge:v1.2.3" {
		t.Errorf("grace %d image %s", *bridge.Spec.Template.Spec.TerminationGracePeriodSeconds, c.Image)
	}
	secret := get[corev1.Secret](t, r, "Secret", "shop-smartrent-bridge-secrets")
	if secret.StringData["inbank-api-key"] != "k" || secret.StringData["callback-secret"] != "s" || secret.StringData["nats-password"] != "p" {
		t.Errorf("secret keys %v", secret.StringData)
	}

	ing := get[networkingv1.Ingress](t, r, "Ingress", "shop-smartrent-bridge-webhook-ingress")
	rule := ing.Spec.Rules[0]
	path := rule.HTTP.Paths[0]
	if rule.Host != "callbacks.shop.example" || path.Path != callbackPathPrefix(t) || *path.PathType != networkingv1.PathTypePrefix ||
		path.Backend.Service.Name != "shop-smartrent-bridge-webhook-ingress" || path.Backend.Service.Port.Name != "http" {
		t.Errorf("ingress rule %+v path %+v", rule, path)
	}
	if *ing.Spec.IngressClassName != "nginx" || ing.Spec.TLS[0].SecretName != "callbacks-tls" {
		t.Errorf("ingress class/tls %+v", ing.Spec)
	}

	var sm struct {
		Spec struct {
			JobLabel  string                                  `json:"jobLabel"`
			Selector  struct{ MatchLabels map[string]string } `json:"selector"`
			Endpoints []struct{ Port, Path string }           `json:"endpoints"`
		}
	}
	if err := yaml.Unmarshal(r.docs["ServiceMonitor"]["shop-smartrent-bridge"], &sm); err != nil {
		t.Fatal(err)
	}
	sel, _ := labels.ValidatedSelectorFromSet(sm.Spec.Selector.MatchLabels)
	// The alerts select these job names: the ServiceMonitor must give them.
	for name, job := range map[string]string{"shop-smartrent-bridge-bridge": "smartrent-bridge", "shop-smartrent-bridge-webhook-ingress-metrics": "smartrent-webhook-ingress"} {
		svc := get[corev1.Service](t, r, "Service", name)
		if !sel.Matches(labels.Set(svc.Labels)) || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
			t.Errorf("ServiceMonitor does not scrape Service %s", name)
		}
		if got := svc.Labels[sm.Spec.JobLabel]; got != job {
			t.Errorf("Service %s is scraped as job %q, the alerts select %q", name, got, job)
		}
	}
	if sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}

	// The PrometheusRule holds exactly the rules of deploy/observability.
	var rule1 struct{ Spec map[string]any }
	if err := yaml.Unmarshal(r.docs["PrometheusRule"]["shop-smartrent-bridge"], &rule1); err != nil {
		t.Fatal(err)
	}
	var source map[string]any
	b, _ := os.ReadFile(filepath.Join(repoRoot, "deploy/observability/alerts.yaml"))
	if err := yaml.Unmarshal(b, &source); err != nil {
		t.Fatal(err)
	}
	// ... with every job selector pinned to the release's namespace.
	ns := `, namespace="rentals"`
	pinned := strings.NewReplacer(`job="smartrent-bridge"`, `job="smartrent-bridge"`+ns, `job="smartrent-webhook-ingress"`, `job="smartrent-webhook-ingress"`+ns).Replace(string(b))
	if err := yaml.Unmarshal([]byte(pinned), &source); err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(rule1.Spec)
	want, _ := yaml.Marshal(source)
	if !bytes.Equal(got, want) || !bytes.Contains(got, []byte("{{ $value }}")) || strings.Count(pinned, `job="smartrent-`) != strings.Count(pinned, ns) || !strings.Contains(pinned, ns) {
		t.Errorf("PrometheusRule spec differs from deploy/observability/alerts.yaml with its selectors pinned to the namespace:\n%s", got)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(r.docs["ConfigMap"]["shop-smartrent-bridge-dashboard"], &cm); err != nil {
		t.Fatal(err)
	}
	dash, _ := os.ReadFile(filepath.Join(repoRoot, "deploy/observability/dashboard.json"))
	if strings.TrimSpace(cm.Data["smartrent-bridge.json"]) != strings.TrimSpace(string(dash)) || cm.Labels["grafana_dashboard"] != "1" {
		t.Error("dashboard ConfigMap differs from deploy/observability/dashboard.json")
	}
	t.Logf("rendered: %v", names(r))
}

// callbackPathPrefix is the ingress's callback path, from its source.
func callbackPathPrefix(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "internal/callbacktoken/token.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const PathPrefix = (".*")`).FindSubmatch(b)
	if m == nil {
		t.Fatal("PathPrefix not found")
	}
	s, err := strconv.Unquote(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRequiredValuesRefused: without the required values the chart does
// not render, and says which value is missing.
func TestRequiredValuesRefused(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, drop := range []string{"inbank", "callbackBaseUrl", "secrets"} {
		values := required()
		delete(values, drop)
		vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "shop", Namespace: "rentals", Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Render(ch, vals); err == nil || !strings.Contains(err.Error(), drop) {
			t.Errorf("without %s: err = %v", drop, err)
		}
	}
}

// TestChartFilesInStep: the chart's copies of the alert rules and the
// dashboard equal deploy/observability (Helm reads no file outside the
// chart).
func TestChartFilesInStep(t *testing.T) {
	for _, f := range []string{"alerts.yaml", "dashboard.json"} {
		a, _ := os.ReadFile(filepath.Join(repoRoot, "deploy/observability", f))
		b, _ := os.ReadFile(filepath.Join(chartDir, "files", f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s/files/%s differs from deploy/observability/%s: cp deploy/observability/%s %s/files/", chartDir, f, f, f, chartDir)
		}
	}
}

// TestLint runs Helm's own chart linter.
func TestLint(t *testing.T) {
	linter := lint.AllWithKubeVersion(chartDir, required(), "rentals", &chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"})
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

// TestEachComponentItsOwnNATSIdentity: the chart deploys the least
// privilege model of deploy/nats/nats-server-secure.conf: the ingress and
// the bridge as different NATS users with their own password keys and
// client certificates, TLS to NATS with a CA, and an ingress that never
// creates streams (PROVISION false) unless asked, even where the bridge
// provisions.
func TestEachComponentItsOwnNATSIdentity(t *testing.T) {
	values := merge(required(), map[string]any{
		"nats": map[string]any{"url": "tls://nats:4222", "tls": map[string]any{"caSecret": "nats-ca"}, "provision": true},
		"bridge": map[string]any{"nats": map[string]any{
			"user": "bridge", "passwordKey": "nats-password-bridge", "tlsClientSecret": "bridge-nats-tls",
		}},
		"webhookIngress": map[string]any{"nats": map[string]any{
			"user": "ingress", "passwordKey": "nats-password-ingress", "tlsClientSecret": "ingress-nats-tls",
		}},
	})
	r := render(t, values)
	for _, tc := range []struct {
		deployment, binary, user, provision, clientSecret string
	}{
		{"shop-smartrent-bridge-bridge", "bridge", "bridge", "true", "bridge-nats-tls"},
		{"shop-smartrent-bridge-webhook-ingress", "webhook-ingress", "ingress", "false", "ingress-nats-tls"},
	} {
		d := get[appsv1.Deployment](t, r, "Deployment", tc.deployment)
		mounts := map[string]string{"/etc/smartrent/secrets": "smartrent-secrets", "/etc/smartrent/nats-ca": "nats-ca", "/etc/smartrent/nats-client": tc.clientSecret}
		c := checkPod(t, d, tc.binary, settings(t, tc.binary), mounts)
		e := env(c)
		for k, want := range map[string]string{
			"NATS_USER": tc.user, "NATS_PASSWORD_FILE": "/etc/smartrent/secrets/nats-password-" + tc.user, "PROVISION": tc.provision,
			"NATS_TLS_CA": "/etc/smartrent/nats-ca/ca.crt", "NATS_TLS_CERT": "/etc/smartrent/nats-client/tls.crt", "NATS_TLS_KEY": "/etc/smartrent/nats-client/tls.key",
		} {
			if e[k] != want {
				t.Errorf("%s %s = %q, want %q", tc.binary, k, e[k], want)
			}
		}
	}
	// Defaults: one user for both (as before), but the ingress still never
	// provisions.
	r = render(t, merge(required(), map[string]any{"nats": map[string]any{"user": "shared"}}))
	ing := env(get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-webhook-ingress").Spec.Template.Spec.Containers[0])
	if ing["NATS_USER"] != "shared" || ing["PROVISION"] != "false" || ing["NATS_PASSWORD_FILE"] != "/etc/smartrent/secrets/nats-password" {
		t.Errorf("ingress with nats.user only: %v", ing)
	}
}
