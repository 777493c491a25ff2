package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// RunProvision creates or updates the JetStream topology (streams,
// buckets and the bridge's consumers) and returns: `bridge provision`.
// An administrator's identity runs it (the Helm chart's Job, a pipeline),
// so that the bridge and the internet-facing ingress run with
// PROVISION=false and never hold the rights to create, change or delete
// streams and consumers. It reads the same stream and consumer settings
// as the binaries (MAX_DELIVER and ACK_WAIT must be the bridge's: it
// checks its consumers against them at start-up).
func RunProvision(ctx context.Context, args []string, getenv cli.Getenv, logOut io.Writer) error {
	fs := cli.New("bridge provision", getenv)
	s := natsconn.Bind(fs, natsconn.InboxAdmin)
	logLevel := fs.String("log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	fs.IntVar(&s.Topology.MaxDeliver, "max-deliver", "MAX_DELIVER", s.Topology.MaxDeliver, "deliveries of one event before it is dead-lettered (as the bridge's)")
	fs.DurationVar(&s.Topology.AckWait, "ack-wait", "ACK_WAIT", s.Topology.AckWait, "time a bridge may hold an event without progress (as the bridge's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.Topology.Validate(); err != nil {
		return err
	}
	log, err := newLogger(logOut, *logLevel, "bridge-provision")
	if err != nil {
		return err
	}
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	nc, js, err := natsconn.Connect(ctx, s, "smartrent-provision", log, lost)
	if err != nil {
		return err
	}
	defer nc.Close()
	if s.SetupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.SetupTimeout)
		defer cancel()
	}
	ctx = streams.WithSetupReport(ctx, func(step string, err error) {
		log.Warn("waiting for JetStream", "step", step, "err", err)
	})
	start := time.Now()
	if _, err := streams.ProvisionBridge(ctx, js, s.Topology); err != nil {
		if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
			return fmt.Errorf("provision: %w", cause)
		}
		return fmt.Errorf("provision: %w", err)
	}
	var streamNames, consumers []string
	for _, st := range s.Topology.Streams() {
		streamNames = append(streamNames, st.Name)
	}
	for _, c := range s.Topology.Consumers() {
		consumers = append(consumers, c.Stream+"/"+c.Durable)
	}
	log.Info("JetStream topology created or updated", "streams", streamNames, "buckets", []string{streams.BucketOrders, streams.BucketOpen},
		"consumers", consumers, "replicas", s.Topology.Replicas, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}
