package ctl_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/apptest"
	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

// smartrentctl builds the real binary once per test binary.
func smartrentctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smartrentctl")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/smartrentctl").CombinedOutput()
	if err != nil {
		t.Fatalf("build smartrentctl: %v\n%s", err, out)
	}
	return bin
}

// run runs the binary with exactly env (plus HOME and PATH pointing
// nowhere useful) and returns its exit code, stdout and stderr.
func run(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=/nonexistent"}, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// TestBinaryAsAnOperatorUsesIt runs the built smartrentctl against a
// running bridge: flags after the subcommand, help without NATS, a nats
// CLI context instead of flags, -o json, orders list filtered and limited
// from the open-order index, dlq replay --dry-run, and passwords never
// printed.
func TestBinaryAsAnOperatorUsesIt(t *testing.T) {
	bin := smartrentctl(t)
	w := apptest.Start(t)
	url := "NATS_URL=" + w.NATSURL

	// Help needs no NATS, whatever comes before it.
	for _, args := range [][]string{{"--help"}, {"orders", "--help"}, {"orders", "list", "--json", "--help"}, {"dlq", "replay", "--help"}} {
		code, out, errOut := run(t, bin, []string{"NATS_URL=nats://127.0.0.1:1"}, args...)
		if code != ctl.ExitOK || !strings.Contains(out, "Usage: smartrentctl") || errOut != "" {
			t.Errorf("%v with NATS down: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, _, errOut := run(t, bin, []string{url}, "orders", "list", "--limit", "x"); code != ctl.ExitUsage || !strings.Contains(errOut, "--limit") {
		t.Errorf("a bad flag value: exit %d %q", code, errOut)
	}

	place(t, w, "BIN-1")
	place(t, w, "BIN-2")
	w.Wait(t, "BIN-1", events.TypeSessionCreated, 1)
	w.Wait(t, "BIN-2", events.TypeSessionCreated, 1)

	// Global flags after the subcommand, -o json and --json alike.
	var lines []struct{ OrderID, Shop, State string }
	for _, args := range [][]string{{"orders", "list", "--json"}, {"orders", "list", "-o", "json"}, {"-o", "json", "orders", "list"}} {
		code, out, errOut := run(t, bin, []string{url}, args...)
		if code != ctl.ExitOK || json.Unmarshal([]byte(out), &lines) != nil || len(lines) != 2 {
			t.Fatalf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
	if lines[0].Shop != "default" || lines[0].State != "pending" {
		t.Errorf("orders list: %+v", lines)
	}
	code, out, errOut := run(t, bin, []string{url}, "orders", "list", "--limit", "1")
	if code != ctl.ExitOK || strings.Count(out, "BIN-") != 1 || !strings.Contains(out, "SHOP") || !strings.Contains(errOut, "1 more not shown") {
		t.Errorf("orders list --limit 1: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"orders", "list", "--state", "granted"}, {"orders", "list", "--shop", "lv-web"}, {"orders", "list", "--older-than", "1h"}} {
		if code, out, _ := run(t, bin, []string{url}, append(args, "-o", "json")...); code != ctl.ExitOK || strings.TrimSpace(out) != "[]" {
			t.Errorf("%v: exit %d %s", args, code, out)
		}
	}
	if code, out, _ := run(t, bin, []string{url}, "orders", "list", "--shop", "default", "-o", "json"); code != ctl.ExitOK || strings.Count(out, "BIN-") != 2 {
		t.Errorf("orders list --shop default: exit %d %s", code, out)
	}

	// A finished order leaves the open-order index: only --all lists it.
	w.Fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 422})
	place(t, w, "BIN-FAIL")
	w.Wait(t, "BIN-FAIL", events.TypeOrderFailed, 1)
	if !w.Out.WaitUntil(10*time.Second, func() bool {
		_, out, _ := run(t, bin, []string{url}, "orders", "list", "-o", "json")
		return !strings.Contains(out, "BIN-FAIL")
	}) {
		t.Error("a failed order is still listed as open")
	}
	if _, out, _ := run(t, bin, []string{url}, "orders", "list", "--all", "--state", "failed"); !strings.Contains(out, "BIN-FAIL") {
		t.Errorf("orders list --all:\n%s", out)
	}

	// dlq replay --dry-run lists and replays nothing.
	var seq string
	if !w.Out.WaitUntil(10*time.Second, func() bool {
		_, out, _ := run(t, bin, []string{url}, "dlq", "list", "-o", "json")
		seq = jsonSeq(out)
		return seq != ""
	}) {
		t.Fatal("no dead letter")
	}
	code, out, errOut = run(t, bin, []string{url}, "dlq", "replay", "--all", "--dry-run")
	if code != ctl.ExitOK || !strings.Contains(out, "would replay 1") || !strings.Contains(out, "BIN-FAIL") {
		t.Errorf("dlq replay --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ := run(t, bin, []string{url}, "dlq", "list", "-o", "json"); jsonSeq(out) != seq {
		t.Errorf("the dry run replayed: %s", out)
	}

	// A nats CLI context instead of NATS_URL: the selected one, or named.
	cfg := t.TempDir()
	os.MkdirAll(filepath.Join(cfg, "nats", "context"), 0o700)
	os.WriteFile(filepath.Join(cfg, "nats", "context", "shop-ops.json"), []byte(`{"description":"test","url":"`+w.NATSURL+`"}`), 0o600)
	os.WriteFile(filepath.Join(cfg, "nats", "context.txt"), []byte("shop-ops"), 0o600)
	if code, out, errOut := run(t, bin, []string{"XDG_CONFIG_HOME=" + cfg}, "orders", "get", "BIN-1"); code != ctl.ExitOK || !strings.Contains(out, "BIN-1") {
		t.Errorf("with the selected nats context: exit %d %s %s", code, out, errOut)
	}
	os.Remove(filepath.Join(cfg, "nats", "context.txt"))
	if code, out, errOut := run(t, bin, []string{"XDG_CONFIG_HOME=" + cfg, "NATS_CONTEXT=shop-ops"}, "orders", "get", "BIN-1"); code != ctl.ExitOK || !strings.Contains(out, "BIN-1") {
		t.Errorf("with NATS_CONTEXT: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := run(t, bin, []string{"XDG_CONFIG_HOME=" + cfg}, "--context", "nope", "orders", "get", "BIN-1"); code != ctl.ExitError || !strings.Contains(errOut, `nats context "nope"`) {
		t.Errorf("an unknown context: exit %d %s", code, errOut)
	}

	// A password given any way is never printed, not even when NATS is
	// unreachable.
	const secret = "S3cret-Pa55/word"
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--server", "nats://operator:" + secret + "@127.0.0.1:1"}},
		{nil, []string{"--server", "operator:" + secret + "@127.0.0.1:1"}},
		{[]string{"NATS_URL=nats://127.0.0.1:1", "NATS_USER=operator", "NATS_PASSWORD=" + secret}, nil},
		{nil, []string{"-s", "nats://127.0.0.1:1", "--user", "operator", "--password", secret}},
	} {
		code, out, errOut := run(t, bin, c.env, append(c.args, "orders", "get", "BIN-1", "--timeout", "300ms")...)
		if code != ctl.ExitError || strings.Contains(out+errOut, secret) || !strings.Contains(errOut, "cannot reach NATS") {
			t.Errorf("%v %v: exit %d, printed %q", c.env, c.args, code, out+errOut)
		}
	}
}

// jsonSeq is the seq of the only dead letter in a dlq list -o json.
func jsonSeq(out string) string {
	var list []struct{ Seq json.Number }
	if json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		return ""
	}
	return list[0].Seq.String()
}
