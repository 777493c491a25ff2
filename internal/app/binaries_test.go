package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/freeport"
)

// TestMain removes the binaries the process tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the real binaries, built once per test run by binaries.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds cmd/bridge and cmd/webhook-ingress (without the race
// detector: these tests time and signal the real processes) and returns
// their directory.
func binaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "smartrent-bin-"); built.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", built.dir, "../../cmd/bridge", "../../cmd/webhook-ingress").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// proc is a binary running as its own process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

// startProc starts the named binary with exactly env (plus PATH); it is
// killed when the test ends if still running.
func startProc(t *testing.T, name string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited waits up to limit for the process to end and returns its error.
func (p *proc) exited(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // later calls see it too
		return err
	case <-time.After(limit):
		t.Fatalf("%s still running after %v; log:\n%s", p.cmd.Path, limit, p.log)
		return nil
	}
}

// freeAddr is a loopback address with a port nobody listens on now (see
// package freeport).
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// readyz answers GET /readyz at addr: the status (0 when the connection
// fails) and the body.
func readyz(addr string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// await polls cond (a process's endpoint or log: there is no event to
// wait on) every 20 ms until it holds or limit passes.
func await(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
