package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// renderedPod is one pod of the Helm chart rendered with non-default,
// least-privilege values (deploy/helm/charttest keeps the file in step
// with the chart): its command, environment, and the Secret key behind
// each file it mounts.
type renderedPod struct {
	Name    string            `json:"name"`
	Command []string          `json:"command"`
	Env     map[string]string `json:"env"`
	Files   map[string]string `json:"files"`
}

// siteSpecific are the settings whose rendered values name places of the
// cluster (a Service, a public URL, a port every pod binds alone); the
// test puts this machine's there and takes every other setting as
// rendered.
var siteSpecific = []string{"NATS_URL", "INBANK_BASE_URL", "CALLBACK_BASE_URL", "LISTEN_ADDR", "METRICS_ADDR"}

// TestChartRenderedPodsRunTheFlow starts each component of the rendered
// chart with exactly the environment and files its pod gets, against
// nats-server with deploy/nats/nats-server-secure.conf over TLS with
// client certificates (the ingress authenticated by nkey instead of a
// password): the Job provisions as admin, the ingress and the bridge run
// with PROVISION=false, and an order goes from order.placed to
// contract.activated with a signed callback, without one permission
// violation. The same provisioning command with the bridge's identity is
// refused at once.
func TestChartRenderedPodsRunTheFlow(t *testing.T) {
	b, err := os.ReadFile("../../deploy/helm/charttest/testdata/rendered-pods.json")
	if err != nil {
		t.Fatal(err)
	}
	var pods []renderedPod
	if err := json.Unmarshal(b, &pods); err != nil {
		t.Fatal(err)
	}
	pod := map[string]renderedPod{}
	for _, p := range pods {
		pod[p.Name] = p
	}

	pki := newTestPKI(t)
	ingressKey, _ := nkeys.CreateUser()
	ingressSeed, _ := ingressKey.Seed()
	ingressPub, _ := ingressKey.PublicKey()
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	clientTLS := map[string]string{"tls.crt": read(pki.clientCert), "tls.key": read(pki.clientKey)}
	secrets := map[string]map[string]string{ // what the cluster's Secrets hold
		"smartrent-secrets": {
			"inbank-api-key": inbanktest.DefaultAPIKey, "callback-secret": testSecret,
			"nats-admin-password": password("admin"), "nats-bridge-password": password("bridge"),
		},
		"nats-ca":           {"ca.crt": read(pki.ca)},
		"admin-nats-tls":    clientTLS,
		"bridge-nats-tls":   clientTLS,
		"ingress-nats-tls":  clientTLS,
		"ingress-nats-nkey": {"nkey.seed": string(ingressSeed)},
	}

	// The secure config over TLS; its ingress user authenticates by nkey.
	opts := secureServerOptions(t)
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS, opts.TLSVerify, opts.TLSConfig, opts.TLSTimeout = true, true, tlsCfg, 2
	i := slices.IndexFunc(opts.Users, func(u *server.User) bool { return u.Username == "ingress" })
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: ingressPub, Permissions: opts.Users[i].Permissions, Account: opts.Users[i].Account})
	opts.Users = slices.Delete(opts.Users, i, i+1)
	slog := &serverLog{}
	srv := natstest.RunOptions(t, opts, slog)
	natsURL := fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)

	fake, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Sign: true}})
	site := map[string]string{"NATS_URL": natsURL, "INBANK_BASE_URL": inbankSrv.URL, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0"}

	// Each pod's files under its own root; its paths in the environment
	// point there.
	envOf := func(p renderedPod) func(string) string {
		root := filepath.Join(t.TempDir(), p.Name)
		for file, secretKey := range p.Files {
			secret, key, _ := strings.Cut(secretKey, "/")
			value, ok := secrets[secret][key]
			if !ok {
				t.Fatalf("%s mounts %s, which the cluster's Secrets do not hold", p.Name, secretKey)
			}
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(file)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, file), []byte(value), 0o400); err != nil {
				t.Fatal(err)
			}
		}
		env := map[string]string{}
		for k, v := range p.Env {
			switch {
			case slices.Contains(siteSpecific, k):
				if k == "NATS_URL" && !strings.HasPrefix(v, "tls://") {
					t.Errorf("%s: NATS_URL %q is not TLS", p.Name, v)
				}
				v = site[k]
			case strings.HasPrefix(v, "/etc/smartrent/"):
				v = filepath.Join(root, v)
			}
			env[k] = v
		}
		return func(k string) string { return env[k] }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := map[string]*syncBuffer{"provision": {}, "webhook-ingress": {}, "bridge": {}}
	defer func() {
		if t.Failed() {
			for name, l := range logs {
				t.Logf("%s log:\n%.4000s", name, l.String())
			}
		}
	}()

	// The Job, with the bridge's identity: refused, not waiting.
	asBridge := pod["provision"]
	asBridge.Env = with(asBridge.Env, "NATS_USER", "bridge", "NATS_PASSWORD_FILE", "/etc/smartrent/secrets/nats-bridge-password")
	asBridge.Files = with(asBridge.Files, "/etc/smartrent/secrets/nats-bridge-password", "smartrent-secrets/nats-bridge-password")
	refusedCtx, cancelRefused := context.WithTimeout(ctx, 20*time.Second)
	err = RunProvision(refusedCtx, nil, envOf(asBridge), &bytes.Buffer{})
	cancelRefused()
	if err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("bridge provision as the bridge's user: %v, want a permission refusal", err)
	}
	const refusal = `"SMARTRENT/user:bridge" - Publish Violation - Subject "$JS.API.STREAM.`
	refused := slog.awaitViolation(refusal, 10*time.Second)
	refusals := len(refused)
	if !strings.Contains(strings.Join(refused, "\n"), refusal) {
		t.Fatalf("the server did not refuse the bridge's user a stream change: %v", refused)
	}

	// The Job, as rendered.
	if c := strings.Join(pod["provision"].Command, " "); c != "/usr/local/bin/bridge provision" {
		t.Fatalf("the Job runs %q", c)
	}
	if err := RunProvision(ctx, nil, envOf(pod["provision"]), logs["provision"]); err != nil {
		t.Fatalf("the provisioning Job: %v", err)
	}

	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	ingressEnv := envOf(pod["webhook-ingress"])
	ing := make(chan IngressStarted, 1)
	wg.Go(func() {
		if err := RunIngress(runCtx, nil, ingressEnv, logs["webhook-ingress"], ing); err != nil {
			t.Errorf("webhook-ingress: %v", err)
			close(ing)
		}
	})
	started, ok := <-ing
	if !ok {
		t.FailNow()
	}
	site["CALLBACK_BASE_URL"] = "http://" + started.Callbacks.String()
	bridgeEnv := envOf(pod["bridge"])
	br := make(chan BridgeStarted, 1)
	wg.Go(func() {
		if err := RunBridge(runCtx, nil, bridgeEnv, logs["bridge"], br); err != nil {
			t.Errorf("bridge: %v", err)
			close(br)
		}
	})
	if _, ok := <-br; !ok {
		t.FailNow()
	}

	// The shop's systems, each as its own user over TLS.
	connect := func(user string) jetstream.JetStream {
		nc, err := nats.Connect(natsURL, nats.UserInfo(user, password(user)), nats.CustomInboxPrefix(inboxOf(user)),
			nats.RootCAs(pki.ca), nats.ClientCert(pki.clientCert, pki.clientKey))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	codec := events.NewCodec(schemas.MustLoad())
	ordersJS, shippingJS := connect("orders"), connect("shipping")
	out, err := eventwatch.Watch(ctx, ordersJS, codec, []string{streams.StreamOut}, nil, func(err error) { t.Errorf("invalid event: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer out.Stop()
	publish := func(js jetstream.JetStream, typ string, data any) {
		t.Helper()
		publishInput(ctx, t, js, codec, "urn:shop:chart", "CHART-1", typ, data)
	}
	wait := func(typ string) map[string]any {
		t.Helper()
		if !out.Wait("CHART-1", typ, 1, 30*time.Second) {
			t.Fatalf("no %s; permission violations: %v", typ, slog.violations()[refusals:])
		}
		return out.Of("CHART-1", typ)[0]
	}
	publish(ordersJS, events.TypeOrderPlaced, orderPlaced("CHART-1", 500))
	session := wait(events.TypeSessionCreated)["sessionUuid"].(string)
	if _, err := fake.Sign(session); err != nil { // a signed callback, through the ingress
		t.Fatal(err)
	}
	wait(events.TypeSessionStatusChange)
	publish(shippingJS, events.TypeDeviceShipped, events.DeviceShipped{OrderID: "CHART-1", AssetIdentifiers: imei})
	wait(events.TypeIdentifiersAssigned)
	publish(shippingJS, events.TypeDeviceDelivered, events.DeviceDelivered{OrderID: "CHART-1"})
	wait(events.TypeContractActivated)
	if n := len(fake.Sessions("CHART-1")); n != 1 {
		t.Errorf("%d sessions at Inbank", n)
	}
	if !strings.Contains(logs["webhook-ingress"].String(), `"signature":"required"`) {
		t.Errorf("the ingress did not run with the rendered signature mode")
	}
	if v := slog.violations()[refusals:]; len(v) > 0 {
		t.Fatalf("permission violations:\n%s", strings.Join(v, "\n"))
	}
}
