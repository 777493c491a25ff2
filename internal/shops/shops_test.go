package shops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "lv.key")
	os.WriteFile(keyFile, []byte("lv-key\n"), 0o600)
	env := map[string]string{"EE_KEY": "ee-key"}
	getenv := func(k string) string { return env[k] }
	good := `
shops:
  ee-web:
    baseUrl: https://demo-api.inbank.ee
    shopUuid: a93f1f44-d5dd-4469-bfcc-c1de9e969213
    productCode: smart_rent_ee
    apiKey: {env: EE_KEY}
  lv-web:
    baseUrl: https://demo-api.inbank.lv
    shopUuid: 0c3f0e2a-6a55-4b0e-9c1e-2f6f1f6f0001
    apiKey: {file: ` + keyFile + `}
    activationPolicy: portal
    sessionTtl: 2h
    concurrency: 8
`
	got, err := Parse([]byte(good), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Alias != "ee-web" || got[1].ActivationPolicy != "portal" || got[1].SessionTTL != 2*time.Hour || got[1].Concurrency != 8 {
		t.Fatalf("shops = %+v", got)
	}
	if k, _ := got[1].APIKey(getenv); k != "lv-key" {
		t.Fatalf("file key = %q", k)
	}
	if k, _ := got[0].APIKey(getenv); k != "ee-key" {
		t.Fatalf("env key = %q", k)
	}
	// JSON is YAML too.
	if _, err := Parse([]byte(`{"shops":{"ee":{"baseUrl":"https://x.ee","shopUuid":"u","apiKey":{"env":"EE_KEY"}}}}`), getenv); err != nil {
		t.Fatal(err)
	}
}

func TestParseProblems(t *testing.T) {
	getenv := func(string) string { return "" }
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "shops:\n  ee:\n    baseUrl: https://x\n    shopUuid: u\n    apiKey: {env: K}\n    apikey: inline\n", []string{"field apikey not found"}},
		{"duplicate alias", "shops:\n  ee:\n    baseUrl: https://x\n  ee:\n    baseUrl: https://y\n", []string{"already defined"}},
		{"inline key", "shops:\n  ee:\n    baseUrl: https://x\n    shopUuid: u\n    apiKey: secret\n", []string{"cannot unmarshal"}},
		{"several problems, one line each", "shops:\n  ee:\n    baseUrl: x\n    apiKey: {file: /nonexistent/key}\n    activationPolicy: sometimes\n",
			[]string{"shop ee: baseUrl", "shop ee: shopUuid is required", "shop ee: activationPolicy", "shop ee: API key file"}},
		{"missing env key", "shops:\n  ee:\n    baseUrl: https://x\n    shopUuid: u\n    apiKey: {env: NOPE}\n", []string{"NOPE (its API key) is not set"}},
		{"bad alias", "shops:\n  EE Web:\n    baseUrl: https://x\n    shopUuid: u\n    apiKey: {env: K}\n", []string{`alias "EE Web"`}},
		{"empty", "shops: {}\n", []string{"no shops"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), getenv)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n < len(tt.want) {
				t.Errorf("%d lines for %d problems:\n%v", n, len(tt.want), err)
			}
		})
	}
}
