// Package natstest starts embedded NATS servers with JetStream for tests:
// one node, or a three-node cluster for the replication tests.
package natstest

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/freeport"
)

// Options tunes an embedded server.
type Options struct {
	// StoreDir keeps the JetStream store; default a test temp dir. Reuse
	// it to restart a server with its data.
	StoreDir string
	// Port; 0 picks a free one.
	Port int
	// SyncAlways makes every write fsync, as deploy/nats ships.
	SyncAlways bool
}

// Server is a running embedded server and the options that restart it.
type Server struct {
	*server.Server
	Opts Options
}

// Run starts a JetStream server and shuts it down when the test ends.
func Run(t testing.TB, o Options) *Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "natstest", Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: o.StoreDir, MaxPayload: 2 << 20,
	}
	if o.SyncAlways {
		opts.SyncAlways = true
	}
	s := RunOptions(t, opts, nil)
	o.Port = s.Addr().(*net.TCPAddr).Port
	return &Server{Server: s, Opts: o}
}

// Connect opens a client connection closed when the test ends.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// Restart stops s and starts a new server on the same port and store.
func Restart(t testing.TB, s *Server) *Server {
	t.Helper()
	s.Stop()
	return Run(t, s.Opts)
}

// Stop shuts the server down (Restart starts it again).
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Cluster is a three-node JetStream cluster.
type Cluster struct {
	Servers []*server.Server // the nodes started so far
	opts    []*server.Options
}

// URLs returns a connect string naming every node, started or not.
func (c *Cluster) URLs() string {
	u := ""
	for i, o := range c.opts {
		if i > 0 {
			u += ","
		}
		u += fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return u
}

// RunCluster starts a three-node cluster, each node with its own store, and
// waits until JetStream has a meta leader.
func RunCluster(t testing.TB) *Cluster {
	t.Helper()
	c := NewCluster(t, 3)
	c.WaitForLeader(t)
	return c
}

// NewCluster prepares a three-node cluster and starts its first n nodes
// without waiting for a leader; StartAll starts the others. With one node
// up, JetStream has no quorum and answers nothing: a cluster still
// forming, as on a fresh install.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 6)
	routes := ""
	for i, p := range ports[:3] {
		if i > 0 {
			routes += ","
		}
		routes += fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	dir := t.TempDir()
	for i := range 3 {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[3+i], NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprint(i)),
			Cluster: server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(routes),
		})
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	c.start(t, n)
	return c
}

// StartAll starts the nodes not started yet.
func (c *Cluster) StartAll(t testing.TB) { c.start(t, len(c.opts)) }

func (c *Cluster) start(t testing.TB, n int) {
	t.Helper()
	for len(c.Servers) < n {
		s, err := server.NewServer(c.opts[len(c.Servers)])
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("natstest: cluster node not ready")
		}
		c.Servers = append(c.Servers, s)
	}
}

// WaitForLeader waits until JetStream has a meta leader.
func (c *Cluster) WaitForLeader(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("natstest: no JetStream meta leader")
		}
		time.Sleep(20 * time.Millisecond) // polling the server's own state; no event to wait on
	}
}

func freePorts(t testing.TB, n int) []int {
	ports := make([]int, n)
	for i := range ports {
		p, err := freeport.Pick()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	return ports
}

// RunOptions starts a server with the given options (authentication,
// accounts, a config file's settings) and shuts it down when the test
// ends. logger, when not nil, receives the server's log.
func RunOptions(t testing.TB, opts *server.Options, logger server.Logger) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	if logger != nil {
		s.SetLogger(logger, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
