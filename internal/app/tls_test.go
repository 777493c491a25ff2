package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type testPKI struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smartrent test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	p := testPKI{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "nats", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = leaf(3, "bridge", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestTLSToNATS runs the flow with NATS reachable over TLS only, the
// server verifying client certificates: both binaries connect with
// NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY, an order gets its session
// and a callback is stored. A bridge without a client certificate is
// refused by the server and stops with a one-line reason.
func TestTLSToNATS(t *testing.T) {
	pki := newTestPKI(t)
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.RunOptions(t, &server.Options{
		ServerName: "tls", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), TLS: true, TLSVerify: true, TLSConfig: tlsCfg, TLSTimeout: 2,
	}, nil)
	url := fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
	fake, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	env := map[string]string{
		"NATS_URL": url, "NATS_TLS_CA": pki.ca, "NATS_TLS_CERT": pki.clientCert, "NATS_TLS_KEY": pki.clientKey,
		"CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"INBANK_BASE_URL": inbankSrv.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey, "INBANK_SHOP_UUID": inbanktest.DefaultShopUUID,
		"INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode, "LOG_LEVEL": "error", "NATS_CONNECT_TIMEOUT": "3s",
	}
	addrs, cancelIngress, ingressDone := startIngress(t, env)
	defer func() {
		cancelIngress()
		<-ingressDone
	}()
	env["CALLBACK_BASE_URL"] = "http://" + addrs.Callbacks.String()
	ctx, cancel := context.WithCancel(context.Background())
	bridgeDone := make(chan error, 1)
	br := make(chan BridgeStarted, 1)
	go func() { bridgeDone <- RunBridge(ctx, nil, func(k string) string { return env[k] }, io.Discard, br) }()
	defer func() {
		cancel()
		<-bridgeDone
	}()
	select {
	case <-br:
	case err := <-bridgeDone:
		t.Fatalf("bridge over TLS: %v", err)
	}

	nc, err := nats.Connect(url, nats.RootCAs(pki.ca), nats.ClientCert(pki.clientCert, pki.clientKey))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	codec := events.NewCodec(schemas.MustLoad())
	out, err := eventwatch.Watch(ctx, js, codec, []string{streams.StreamOut}, nil, func(err error) { t.Errorf("invalid event: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer out.Stop()
	e, err := codec.New("urn:shop:tls", events.TypeOrderPlaced, "TLS-1", orderPlaced("TLS-1", 500))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.NewPublisher(js, codec).Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	if !out.Wait("TLS-1", events.TypeSessionCreated, 1, 30*time.Second) {
		t.Fatal("no session.created over TLS")
	}
	if len(fake.Sessions("TLS-1")) != 1 {
		t.Fatal("no session at Inbank")
	}
	tokens, _ := callbacktoken.New([]string{testSecret})
	resp, err := http.Post("http://"+addrs.Callbacks.String()+callbacktoken.PathPrefix+tokens.Token("TLS-1"), "application/json", strings.NewReader(`{"uuid":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("callback over TLS: %d", resp.StatusCode)
	}

	// smartrentctl over TLS, as an operator would run it.
	var stdout, stderr strings.Builder
	ctlEnv := map[string]string{"NATS_URL": url, "NATS_TLS_CA": pki.ca, "NATS_TLS_CERT": pki.clientCert, "NATS_TLS_KEY": pki.clientKey}
	if code := ctl.Run(ctx, []string{"orders", "get", "TLS-1"}, &stdout, &stderr, func(k string) string { return ctlEnv[k] }); code != ctl.ExitOK {
		t.Errorf("smartrentctl over TLS: exit %d: %s", code, stderr.String())
	}

	// Without a client certificate the server refuses the connection.
	noCert := map[string]string{}
	for k, v := range env {
		noCert[k] = v
	}
	delete(noCert, "NATS_TLS_CERT")
	delete(noCert, "NATS_TLS_KEY")
	err = RunBridge(context.Background(), nil, func(k string) string { return noCert[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot reach NATS") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("bridge without a client certificate: %v, want a one-line refusal", err)
	}
}
