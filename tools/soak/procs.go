package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/smartrent-bridge/bridge/internal/freeport"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

// binaries are built once per run.
type binaries struct {
	dir string
}

// build compiles the product's binaries and nats-server (from the module's
// own dependency) into dir.
func build(ctx context.Context, dir string) (*binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	for _, b := range []struct{ out, pkg string }{
		{"bridge", "./cmd/bridge"},
		{"webhook-ingress", "./cmd/webhook-ingress"},
		{"inbank-sandbox", "./cmd/inbank-sandbox"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
		{"barebridge", "./tools/barebridge"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	return &binaries{dir: dir}, nil
}

// moduleRoot is the folder of the go.mod above the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := string(out[:len(out)-1])
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module")
	}
	return filepath.Dir(mod), nil
}

func (b *binaries) path(name string) string { return filepath.Join(b.dir, name) }

// proc is a child process that can be killed and started again with the
// same command line.
type proc struct {
	name string
	args []string
	env  []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(name, bin string, args, env []string, logDir string) *proc {
	return &proc{name: name, args: append([]string{bin}, args...), env: env, log: filepath.Join(logDir, name+".log")}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig and waits (bounded) for the process to end.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *proc) kill() { p.signal(syscall.SIGKILL) }
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

// freePort is a loopback port for a child process (see package freeport:
// one no bind to port 0 elsewhere can take meanwhile).
func freePort() (int, error) { return freeport.Pick() }

// waitHTTP waits until url answers 200.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s not ready within %s", url, timeout), err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening within %s: %w", addr, timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// pid is the running process's id (0 before it started).
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// startFakeInbank serves the fake Inbank on a loopback port, every call
// taking latency, for the benchmarks; stop ends it.
func startFakeInbank(latency time.Duration) (fake *inbanktest.Fake, url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	url = "http://" + ln.Addr().String()
	fake = inbanktest.New(inbanktest.Config{PublicURL: url})
	fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Latency: inbanktest.Duration(latency)})
	srv := &http.Server{Handler: fake}
	go srv.Serve(ln)
	return fake, url, func() { srv.Close(); fake.Close() }, nil
}

// benchBridgeEnv is the environment of a bridge under benchmark (ours or
// the bare one): its NATS and Inbank, and room for inFlight orders.
func benchBridgeEnv(natsURL, inbankURL string, inFlight int) []string {
	return []string{
		"NATS_URL=" + natsURL, "INBANK_BASE_URL=" + inbankURL, "INBANK_API_KEY=" + inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID=" + inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE=" + inbanktest.DefaultProductCode,
		"CALLBACK_BASE_URL=http://127.0.0.1:1", "CALLBACK_SECRET=" + soakSecret, "LOG_LEVEL=warn", "RECONCILE_INTERVAL=10m",
		fmt.Sprintf("CONCURRENCY=%d", max(inFlight*2, 64)),
	}
}
