// Package docs keeps the READMEs honest: every shell command in them is
// run against a running product (or checked, where it only illustrates
// placeholders).
package docs

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

const natsCLI = "github.com/nats-io/natscli/nats@v0.5.0"

// shellBlocks returns the ```sh blocks of a markdown file.
func shellBlocks(t *testing.T, path string) []string { return fencedBlocks(t, path, "```sh") }

// fencedBlocks returns the code blocks of a markdown file whose opening
// fence line is exactly fence ("```sh upgrade" marks a block that runs
// only in its own test).
func fencedBlocks(t *testing.T, path, fence string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == fence:
			cur = &strings.Builder{}
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// natsBinary installs the nats CLI (pinned) once and returns its folder.
func natsBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.TempDir(), "smartrent-natscli")
	if _, err := os.Stat(filepath.Join(bin, "nats")); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", natsCLI)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("install %s: %v\n%s", natsCLI, err, out)
		}
		t.Skipf("cannot install %s here (%v); the README's nats commands are not checked", natsCLI, err)
	}
	return bin
}

func run(t *testing.T, ctx context.Context, dir string, env []string, script string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s\nfailed: %v\n%s%s", script, err, stdout.String(), stderr.String())
	}
	return stdout.String() // what a pipe after the command would read
}

// TestREADMECommands runs the README's example and nats CLI commands
// against `make up`'s stack (cmd/stack, the real binary, on free ports);
// `make demo` and `make test` run in CI anyway, and the deployment lines
// with <placeholders> are only shapes.
func TestREADMECommands(t *testing.T) {
	bin := natsBinary(t)
	w := startStack(t)
	root := filepath.Join("..", "..")
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "NATS_URL=" + w.NATSURL}
	ran := 0
	for _, block := range shellBlocks(t, filepath.Join(root, "README.md")) {
		for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
			cmd, _, _ := strings.Cut(line, "#")
			cmd = strings.TrimSpace(cmd)
			switch {
			case cmd == "" || strings.HasPrefix(cmd, "make ") || strings.Contains(cmd, "<"):
				continue
			case strings.HasPrefix(cmd, "export "), strings.HasPrefix(cmd, "go run ./cmd/"):
				continue // deployment shapes with placeholders
			case strings.HasPrefix(cmd, "kubectl "), strings.HasPrefix(cmd, "helm "), strings.HasPrefix(cmd, "-"),
				strings.Contains(cmd, "/cmd/crane@"):
				continue // Kubernetes and registry: make image and make chart check what these use
			}
			cmd = strings.ReplaceAll(cmd, "nats://127.0.0.1:4222", w.NATSURL)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if strings.HasPrefix(cmd, "go run ./examples/analytics") {
				cmd += " --max 1" // it runs until interrupted; one activation is enough
			}
			out := run(t, ctx, root, env, cmd)
			cancel()
			ran++
			if strings.HasPrefix(cmd, "go run ./examples/order-service") {
				// The customer signs, so the shipping lines that follow can go on.
				session := w.Wait(t, "ORD-42", events.TypeSessionCreated, 1)[0]["sessionUuid"].(string)
				w.sign(t, session)
				w.Wait(t, "ORD-42", events.TypeSessionStatusChange, 1)
			}
			if strings.Contains(cmd, "| jq") {
				ids := strings.Fields(out)
				if len(ids) == 0 || slices.ContainsFunc(ids, func(id string) bool { return id != "ORD-42" }) {
					t.Errorf("%s printed %q, want only ORD-42 lines", cmd, out)
				}
			}
			if strings.HasPrefix(cmd, "nats micro info") && !strings.Contains(out, "smartrent.quote.batch") {
				t.Errorf("%s:\n%s", cmd, out)
			}
			if strings.HasPrefix(cmd, "nats req smartrent.quote") && !strings.Contains(out, "grossMonthlyPayment") {
				t.Errorf("%s:\n%s", cmd, out)
			}
		}
	}
	if ran < 6 {
		t.Fatalf("ran %d README commands; the blocks changed shape?", ran)
	}
}

// TestDeployNATSCommands runs deploy/nats/README.md's nats CLI set-up on
// a fresh server: the streams, bucket and consumers it creates are the
// ones the binaries expect.
func TestDeployNATSCommands(t *testing.T) {
	bin := natsBinary(t)
	srv := natstest.Run(t, natstest.Options{})
	root := filepath.Join("..", "..")
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "NATS_URL=" + srv.ClientURL()}
	blocks := shellBlocks(t, filepath.Join(root, "deploy", "nats", "README.md"))
	if len(blocks) == 0 {
		t.Fatal("no shell block in deploy/nats/README.md")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, b := range blocks {
		run(t, ctx, root, env, b)
	}
	_, js := natstest.Connect(t, srv.ClientURL())
	for _, s := range []string{streams.StreamIn, streams.StreamCallbacks, streams.StreamOut, streams.StreamDLQ} {
		if _, err := js.Stream(ctx, s); err != nil {
			t.Errorf("stream %s: %v", s, err)
		}
	}
	for _, c := range streams.DefaultTopology().Consumers() {
		if _, err := js.Consumer(ctx, c.Stream, c.Durable); err != nil {
			t.Errorf("consumer %s of %s: %v", c.Durable, c.Stream, err)
		}
	}
	if _, err := js.Consumer(ctx, streams.StreamOut, "analytics-activations"); err != nil {
		t.Errorf("the analytics durable admin creates for the secure config: %v", err)
	}
	if _, err := js.KeyValue(ctx, streams.BucketOrders); err != nil {
		t.Errorf("bucket: %v", err)
	}
	if _, err := streams.VerifyBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Errorf("a bridge with PROVISION=false would not start on it: %v", err)
	}
	if err := streams.VerifyStreams(ctx, js, streams.DefaultTopology(), streams.StreamCallbacks); err != nil {
		t.Errorf("an ingress with PROVISION=false would not start on it: %v", err)
	}
}

// TestDeployNATSUpgradeCommands runs deploy/nats/README.md's upgrade
// commands (the ```sh upgrade block) on the layout of the version before
// SMARTRENT_CALLBACKS, with a callback stored: afterwards the binaries
// start with PROVISION=false, the old consumer is gone, SMARTRENT_IN keeps
// its events and a new callback lands in SMARTRENT_CALLBACKS.
func TestDeployNATSUpgradeCommands(t *testing.T) {
	bin := natsBinary(t)
	srv := natstest.Run(t, natstest.Options{})
	root := filepath.Join("..", "..")
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "NATS_URL=" + srv.ClientURL()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, js := natstest.Connect(t, srv.ClientURL())
	topo := streams.DefaultTopology()
	for _, s := range topo.Streams() {
		if s.Name == streams.StreamCallbacks {
			continue
		}
		if s.Name == streams.StreamIn {
			s.Subjects = []string{"smartrent.in.>"} // as before
		}
		if _, err := js.CreateStream(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []jetstream.KeyValueConfig{topo.OrdersBucket(), topo.OpenBucket()} {
		if _, err := js.CreateKeyValue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range topo.Consumers() {
		if _, err := js.CreateConsumer(ctx, streams.StreamIn, c.ConsumerConfig); err != nil { // all on SMARTRENT_IN, as before
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, events.SubjectCallbackReceived, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(t, filepath.Join(root, "deploy", "nats", "README.md"), "```sh upgrade")
	if len(blocks) != 1 {
		t.Fatalf("%d upgrade blocks in deploy/nats/README.md, want 1", len(blocks))
	}
	run(t, ctx, root, env, blocks[0])
	if _, err := streams.VerifyBridge(ctx, js, topo); err != nil {
		t.Errorf("a bridge with PROVISION=false would not start after the upgrade: %v", err)
	}
	if err := streams.VerifyStreams(ctx, js, topo, streams.StreamCallbacks); err != nil {
		t.Errorf("an ingress with PROVISION=false would not start after the upgrade: %v", err)
	}
	if _, err := js.Consumer(ctx, streams.StreamIn, streams.ConsumerCallbacks); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the old callbacks consumer: %v, want it removed", err)
	}
	ack, err := js.Publish(ctx, events.SubjectCallbackReceived, []byte(`{}`))
	if err != nil || ack.Stream != streams.StreamCallbacks {
		t.Errorf("a callback after the upgrade: %+v, %v", ack, err)
	}
	in, err := js.Stream(ctx, streams.StreamIn)
	if err != nil || in.CachedInfo().State.Msgs != 1 {
		t.Errorf("SMARTRENT_IN after the upgrade: %v", err)
	}
}

// localStack is cmd/stack running as `make up` runs it.
type localStack struct {
	NATSURL, SandboxURL string
	out                 *eventwatch.Watcher
}

// startStack builds and starts cmd/stack on free ports, waits for its
// "ready" line, and at the end of the test stops it with SIGINT, as
// Ctrl-C would: it must exit 0 having said "stopping".
func startStack(t *testing.T) *localStack {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stack")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/stack").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/stack: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--nats-addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0",
		"--ingress-addr", "127.0.0.1:0", "--ingress-metrics-addr", "127.0.0.1:0", "--bridge-metrics-addr", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &localStack{}
	lines := bufio.NewScanner(stdout)
	var banner []string
	for lines.Scan() {
		line := lines.Text()
		banner = append(banner, line)
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "NATS" {
			s.NATSURL = f[1]
		} else if len(f) >= 3 && f[0] == "Inbank" && f[1] == "sandbox" {
			s.SandboxURL = f[2]
		}
		if line == "ready" {
			break
		}
	}
	if s.NATSURL == "" || s.SandboxURL == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("cmd/stack did not say where it runs:\n%s\n%s", strings.Join(banner, "\n"), stderr.String())
	}
	rest := make(chan string, 1)
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		rest <- b.String()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		if out := <-rest; err != nil || !strings.Contains(out, "stopping") {
			t.Errorf("cmd/stack on Ctrl-C: %v, printed %q\n%s", err, out, stderr.String())
		}
	})
	_, js := natstest.Connect(t, s.NATSURL)
	out, err := eventwatch.Watch(context.Background(), js, events.NewCodec(schemas.MustLoad()), []string{streams.StreamOut}, nil, func(err error) { t.Errorf("invalid event: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(out.Stop)
	s.out = out
	return s
}

// Wait fails the test unless the order gets n events of typ within 30 s.
func (s *localStack) Wait(t *testing.T, orderID, typ string, n int) []map[string]any {
	t.Helper()
	if !s.out.Wait(orderID, typ, n, 30*time.Second) {
		t.Fatalf("%s: no %d × %s within 30s", orderID, n, typ)
	}
	return s.out.Of(orderID, typ)
}

// sign signs a session as the customer, through the sandbox's control API.
func (s *localStack) sign(t *testing.T, session string) {
	t.Helper()
	resp, err := http.Post(s.SandboxURL+"/sandbox/sessions/"+session+"/sign", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign %s: %s", session, resp.Status)
	}
}
