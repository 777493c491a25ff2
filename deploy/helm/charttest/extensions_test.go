package charttest

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestMisspeltValuesRefused: values.schema.json makes helm install (the
// values as install renders them) and helm lint refuse a value the chart
// does not know, or one of the wrong kind, instead of ignoring it.
func TestMisspeltValuesRefused(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		values map[string]any
		want   string
	}{
		{map[string]any{"bridge": map[string]any{"replica": 3}}, "replica"},
		{map[string]any{"nats": map[string]any{"provison": true}}, "provison"},
		{map[string]any{"webhookIngress": map[string]any{"signature": "maybe"}}, "signature"},
		{map[string]any{"bridge": map[string]any{"replicas": "two"}}, "replicas"},
		{map[string]any{"provisioning": map[string]any{"job": map[string]any{"nats": map[string]any{"usr": "admin"}}}}, "usr"},
		{map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enable": true}}}, "enable"},
	} {
		values := merge(required(), bad.values)
		_, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "shop", Namespace: "rentals", Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("install with %v: %v, want a schema error naming %q", bad.values, err, bad.want)
		}
		linter := lint.AllWithKubeVersion(chartDir, values, "rentals", &chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"})
		if !slices.ContainsFunc(linter.Messages, func(m support.Message) bool {
			return m.Severity == support.ErrorSev && strings.Contains(m.Err.Error(), bad.want)
		}) {
			t.Errorf("helm lint with %v: %v, want an error naming %q", bad.values, linter.Messages, bad.want)
		}
	}
}

// TestExtensionPoints: env from Secrets (valueFrom), envFrom, extra
// volumes and mounts, and a shops file with per-shop key Secrets reach the
// pods; probes tolerate one slow answer.
func TestExtensionPoints(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal([]byte(`
bridge:
  extraEnv:
    - name: OTEL_EXPORTER_OTLP_HEADERS
      valueFrom: {secretKeyRef: {name: otel, key: headers}}
  envFrom:
    - configMapRef: {name: bridge-tuning}
  extraVolumes:
    - name: ca-bundle
      configMap: {name: corporate-ca}
  extraVolumeMounts:
    - name: ca-bundle
      mountPath: /etc/ssl/corporate
      readOnly: true
  shops:
    lv-web:
      baseUrl: https://lv.inbank.example
      shopUuid: 0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001
      apiKey: {file: /etc/smartrent/shop-keys/lv-inbank/api-key}
  shopKeySecrets: [lv-inbank]
webhookIngress:
  extraEnv:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
`), &values); err != nil {
		t.Fatal(err)
	}
	r := render(t, merge(required(), values))
	bridge := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-bridge")
	c := bridge.Spec.Template.Spec.Containers[0]
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OTEL_EXPORTER_OTLP_HEADERS" }); i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef.Name != "otel" {
		t.Errorf("bridge extraEnv: %+v", c.Env)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef.Name != "bridge-tuning" {
		t.Errorf("bridge envFrom: %+v", c.EnvFrom)
	}
	if env(c)["INBANK_SHOPS_FILE"] != "/etc/smartrent/shops/shops.yaml" {
		t.Errorf("INBANK_SHOPS_FILE = %q", env(c)["INBANK_SHOPS_FILE"])
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for path, volume := range map[string]string{"/etc/ssl/corporate": "ca-bundle", "/etc/smartrent/shops": "shops", "/etc/smartrent/shop-keys/lv-inbank": "shop-keys-lv-inbank"} {
		if mounts[path] != volume || !slices.ContainsFunc(bridge.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == volume }) {
			t.Errorf("no volume %s at %s: %v", volume, path, mounts)
		}
	}
	cm := get[corev1.ConfigMap](t, r, "ConfigMap", "shop-smartrent-bridge-shops")
	var shops struct {
		Shops map[string]struct {
			BaseURL string            `json:"baseUrl"`
			APIKey  map[string]string `json:"apiKey"`
		}
	}
	if err := yaml.Unmarshal([]byte(cm.Data["shops.yaml"]), &shops); err != nil || shops.Shops["lv-web"].APIKey["file"] != "/etc/smartrent/shop-keys/lv-inbank/api-key" {
		t.Errorf("shops file: %v %+v\n%s", err, shops, cm.Data["shops.yaml"])
	}
	if bridge.Spec.Template.Annotations["checksum/shops"] == "" {
		t.Error("a change of shops does not restart the bridges")
	}
	ingress := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-webhook-ingress")
	ic := ingress.Spec.Template.Spec.Containers[0]
	if i := slices.IndexFunc(ic.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" }); i < 0 || ic.Env[i].ValueFrom.FieldRef == nil {
		t.Errorf("ingress extraEnv: %+v", ic.Env)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, ic.ReadinessProbe} {
		if p.TimeoutSeconds < 3 || p.FailureThreshold < 3 {
			t.Errorf("probe %s: timeout %ds, failure threshold %d: /readyz takes up to 2 s, and one slow answer must not take a pod out", p.HTTPGet.Path, p.TimeoutSeconds, p.FailureThreshold)
		}
	}
}
