package app

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinariesNeverPrintSecrets runs the real binaries with secrets in the
// environment and in _FILE variables, asking for --help, with a mistyped
// flag and with a configuration error, and looks for the secrets in
// everything they print.
func TestBinariesNeverPrintSecrets(t *testing.T) {
	bin, dir := binaries(t), t.TempDir()
	const (
		apiKey     = "sk-live-APIKEY-9f8e7d6c5b4a"
		secret     = "cb-secret-0a1b2c3d4e5f-SECRET"
		fileKey    = "sk-live-FROM-FILE-1234567890"
		fileSecret = "cb-secret-FROM-FILE-0987654321"
		natsCreds  = "nats://operator:NATS-PASSWORD-42@127.0.0.1:1"
		natsPass   = "NATS-PASSWORD-42"
	)
	keyFile := filepath.Join(dir, "key")
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(fileKey+"\n"), 0o600)
	os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600)
	envs := map[string][]string{
		"environment": {"INBANK_API_KEY=" + apiKey, "CALLBACK_SECRET=" + secret, "NATS_USER=bridge", "NATS_PASSWORD=" + natsPass},
		"files":       {"INBANK_API_KEY_FILE=" + keyFile, "CALLBACK_SECRET_FILE=" + secretFile},
	}
	cases := map[string][]string{
		"help":       {"--help"},
		"bad flag":   {"--concurency=8"},
		"bad value":  {"--ack-wait=soon"},
		"no base":    {}, // the bridge: INBANK_BASE_URL is required; the ingress: NATS unreachable
		"extra args": {"stray"},
	}
	for _, name := range []string{"bridge", "webhook-ingress"} {
		for envName, env := range envs {
			for caseName, args := range cases {
				t.Run(name+"/"+envName+"/"+caseName, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
					cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "NATS_URL=" + natsCreds, "NATS_CONNECT_TIMEOUT=1s",
						"METRICS_ADDR=127.0.0.1:0", "LISTEN_ADDR=127.0.0.1:0", "INBANK_SHOP_UUID=x", "CALLBACK_BASE_URL=http://127.0.0.1:1"}, env...)
					out, _ := cmd.CombinedOutput()
					if ctx.Err() != nil {
						t.Fatalf("%s %v did not stop: %s", name, args, out)
					}
					if len(out) == 0 {
						t.Fatalf("%s %v printed nothing", name, args)
					}
					for _, s := range []string{apiKey, secret, fileKey, fileSecret, natsPass} {
						if strings.Contains(string(out), s) {
							t.Errorf("%s %v printed a secret (%.12s…):\n%s", name, args, s, out)
						}
					}
				})
			}
		}
	}
}
