package charttest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var update = flag.Bool("update", false, "rewrite testdata/rendered-pods.json")

// renderedPodsFile is what the chart, rendered with leastPrivilegeValues,
// gives each pod: read by internal/app's TestChartRenderedPodsRunTheFlow,
// which starts each binary with exactly that environment and those files
// against nats-server with the secure configuration and TLS.
const renderedPodsFile = "testdata/rendered-pods.json"

// leastPrivilegeValues deploys the model of nats-server-secure.conf: an
// admin identity only the provisioning Job holds, the bridge as user
// `bridge` with its own password key, the ingress by nkey, TLS to NATS
// with a client certificate each, signed callbacks required.
func leastPrivilegeValues() map[string]any {
	return merge(required(), map[string]any{
		"nats": map[string]any{"url": "tls://nats.rentals.svc:4222", "replicas": 1, "tls": map[string]any{"caSecret": "nats-ca"}},
		"inbank": map[string]any{
			"baseUrl": "https://partner.inbank.example", "shopUuid": "a93f1f44-d5dd-4469-bfcc-c1de9e969213",
			"productCode": "smart_rent", "activationPolicy": "on-delivery",
		},
		"logLevel": "debug",
		"provisioning": map[string]any{"job": map[string]any{"nats": map[string]any{
			"user": "admin", "passwordKey": "nats-admin-password", "tlsClientSecret": "admin-nats-tls",
		}}},
		"bridge": map[string]any{
			"nats": map[string]any{"user": "bridge", "passwordKey": "nats-bridge-password", "tlsClientSecret": "bridge-nats-tls"},
			"env":  map[string]any{"ACK_WAIT": "10s", "MAX_DELIVER": "7", "RECONCILE_INTERVAL": "2s"},
		},
		"webhookIngress": map[string]any{
			"nats":      map[string]any{"nkeySecret": "ingress-nats-nkey", "tlsClientSecret": "ingress-nats-tls"},
			"signature": "required",
		},
	})
}

// renderedPod is one pod as the chart renders it: its command, its
// environment and the files its Secrets put where (path → Secret/key).
type renderedPod struct {
	Name    string            `json:"name"`
	Command []string          `json:"command"`
	Env     map[string]string `json:"env"`
	Files   map[string]string `json:"files"`
}

// podOf extracts a renderedPod, failing on what a test could not
// reproduce exactly (env from a field ref, a Secret mounted whole).
func podOf(t *testing.T, name string, spec corev1.PodSpec) renderedPod {
	t.Helper()
	c := spec.Containers[0]
	p := renderedPod{Name: name, Command: c.Command, Env: map[string]string{}, Files: map[string]string{}}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("%s: %s comes from %v", name, e.Name, e.ValueFrom)
		}
		p.Env[e.Name] = e.Value
	}
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || spec.Volumes[i].Secret == nil {
			t.Errorf("%s: mount %s is not a Secret", name, m.MountPath)
			continue
		}
		s := spec.Volumes[i].Secret
		if len(s.Items) == 0 {
			t.Errorf("%s: Secret %s mounted whole at %s: a pod gets only the keys it reads", name, s.SecretName, m.MountPath)
		}
		for _, it := range s.Items {
			p.Files[path.Join(m.MountPath, it.Path)] = s.SecretName + "/" + it.Key
		}
	}
	return p
}

// TestRenderedPodsInSync renders leastPrivilegeValues and compares what
// each pod gets with testdata/rendered-pods.json (regenerate with
// -update), so the run test in internal/app runs what the chart deploys.
func TestRenderedPodsInSync(t *testing.T) {
	r := render(t, leastPrivilegeValues())
	job := get[batchv1.Job](t, r, "Job", "shop-smartrent-bridge-provision-1")
	pods := []renderedPod{podOf(t, "provision", job.Spec.Template.Spec)}
	for _, name := range []string{"webhook-ingress", "bridge"} {
		d := get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-"+name)
		pods = append(pods, podOf(t, name, d.Spec.Template.Spec))
	}
	got, err := json.MarshalIndent(pods, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(renderedPodsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(renderedPodsFile)
	if err != nil {
		t.Fatalf("%v (generate with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of step with the chart (regenerate with -update)", renderedPodsFile)
	}
	// Each pod holds only its own secrets: the admin's password only in
	// the Job, the bridge's never in the ingress.
	for _, p := range pods {
		for file, secretKey := range p.Files {
			key := path.Base(secretKey)
			switch {
			case key == "nats-admin-password" && p.Name != "provision",
				key == "nats-bridge-password" && p.Name != "bridge",
				strings.HasPrefix(secretKey, "ingress-") && p.Name != "webhook-ingress",
				key == "inbank-api-key" && p.Name == "provision":
				t.Errorf("%s holds %s (%s)", p.Name, secretKey, file)
			}
		}
		if p.Env["PROVISION"] == "true" {
			t.Errorf("%s provisions: only the Job's admin identity may", p.Name)
		}
	}
}

// TestNetworkPolicies: each component's policy selects its pods and
// allows only what it uses: the ingress never reaches Inbank (443), only
// the ingress takes callbacks, the Job takes nothing.
func TestNetworkPolicies(t *testing.T) {
	r := render(t, leastPrivilegeValues())
	for _, tc := range []struct {
		policy, pods       string
		inPorts, egressTCP []string
	}{
		{"shop-smartrent-bridge-bridge", "bridge", []string{"metrics"}, []string{"53", "4222", "443"}},
		{"shop-smartrent-bridge-webhook-ingress", "webhook-ingress", []string{"http", "metrics"}, []string{"53", "4222"}},
		{"shop-smartrent-bridge-provision", "provision", nil, []string{"53", "4222"}},
	} {
		np := get[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", tc.policy)
		var podLabels map[string]string
		if tc.pods == "provision" {
			podLabels = get[batchv1.Job](t, r, "Job", "shop-smartrent-bridge-provision-1").Spec.Template.Labels
		} else {
			podLabels = get[appsv1.Deployment](t, r, "Deployment", "shop-smartrent-bridge-"+tc.pods).Spec.Template.Labels
		}
		sel, err := labels.ValidatedSelectorFromSet(np.Spec.PodSelector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			t.Errorf("%s does not select the %s pods", tc.policy, tc.pods)
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("%s: policy types %v, want both", tc.policy, np.Spec.PolicyTypes)
		}
		var in, out []string
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				in = append(in, p.Port.String())
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				if p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP {
					out = append(out, p.Port.String())
				}
			}
			if len(rule.Ports) == 0 {
				t.Errorf("%s: an egress rule without ports allows everything", tc.policy)
			}
		}
		if !slices.Equal(in, tc.inPorts) || !slices.Equal(out, tc.egressTCP) {
			t.Errorf("%s: ingress ports %v, egress TCP ports %v; want %v and %v", tc.policy, in, out, tc.inPorts, tc.egressTCP)
		}
	}
	if r := render(t, merge(required(), map[string]any{"networkPolicy": map[string]any{"enabled": false}})); len(r.docs["NetworkPolicy"]) != 0 {
		t.Error("networkPolicy.enabled=false still renders policies")
	}
}
