package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

func (c *session) dlqMessages(ctx context.Context, subject string) ([]*jetstream.RawStreamMsg, error) {
	if err := c.dial(); err != nil {
		return nil, err
	}
	_, all, err := streams.StreamMessages(ctx, c.js, streams.StreamDLQ)
	if err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for _, m := range all {
		if subject == "" || strings.TrimPrefix(m.Subject, events.SubjectDLQPrefix) == subject || m.Subject == subject {
			out = append(out, m)
		}
	}
	return out, nil
}

type dlqList struct {
	Subject string `help:"only dead letters of this original subject"`
}

func (l *dlqList) Run(ctx context.Context, c *session) error {
	msgs, err := c.dlqMessages(ctx, l.Subject)
	if err != nil {
		return err
	}
	list := []deadLetter{}
	for _, m := range msgs {
		list = append(list, toDeadLetter(m, false))
	}
	if c.json {
		return c.printJSON(list)
	}
	c.printDeadLetters(list)
	return nil
}

func (c *session) printDeadLetters(list []deadLetter) {
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSUBJECT\tORDER\tTIME\tDELIVERIES\tREASON")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Original, d.OrderID, d.Time.Format(time.RFC3339), d.Deliveries, d.Reason)
	}
	tw.Flush()
}

type dlqShow struct {
	Seq uint64 `arg:"" help:"the dead letter's sequence number in SMARTRENT_DLQ"`
}

func (s *dlqShow) Run(ctx context.Context, c *session) error {
	if err := c.dial(); err != nil {
		return err
	}
	stream, err := c.js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return err
	}
	m, err := stream.GetMsg(ctx, s.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return failf(ExitNotFound, "no dead letter %d", s.Seq)
	}
	if err != nil {
		return err
	}
	d := toDeadLetter(m, true)
	if c.json {
		return c.printJSON(d)
	}
	fmt.Fprintf(c.out, "seq %d, %s, dead-lettered %s after %s deliveries\nreason: %s\n\nheaders:\n", d.Seq, d.Original, d.Time.Format(time.RFC3339), d.Deliveries, d.Reason)
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(c.out, "  %s: %s\n", k, strings.Join(d.Headers[k], ", "))
	}
	fmt.Fprintf(c.out, "\nbody:\n%s\n", m.Data)
	return nil
}

type dlqReplay struct {
	Seq     uint64 `arg:"" optional:"" help:"the dead letter's sequence number (or --all)"`
	All     bool   `help:"replay every dead letter (with --subject: of that subject)"`
	Subject string `help:"only dead letters of this original subject"`
	DryRun  bool   `help:"list what would be replayed, and replay nothing"`
}

// Run asks a bridge to republish each chosen dead letter to its original
// subject with a new event id; the bridge removes it from the DLQ only
// after its PubAck.
func (r *dlqReplay) Run(ctx context.Context, c *session) error {
	if r.All == (r.Seq != 0) {
		return usageError{errors.New("give one sequence number or --all")}
	}
	msgs, err := c.dlqMessages(ctx, r.Subject)
	if err != nil {
		return err
	}
	var chosen []*jetstream.RawStreamMsg
	for _, m := range msgs {
		if r.All || m.Sequence == r.Seq {
			chosen = append(chosen, m)
		}
	}
	if r.Seq != 0 && len(chosen) == 0 {
		return failf(ExitNotFound, "no dead letter %d", r.Seq)
	}
	if r.DryRun {
		list := []deadLetter{}
		for _, m := range chosen {
			list = append(list, toDeadLetter(m, false))
		}
		if c.json {
			return c.printJSON(list)
		}
		fmt.Fprintf(c.out, "would replay %d dead letters (dry run: nothing replayed)\n", len(list))
		c.printDeadLetters(list)
		return nil
	}
	for _, m := range chosen {
		if err := c.replay(ctx, m); err != nil {
			return fmt.Errorf("replay %d: %w", m.Sequence, err)
		}
		fmt.Fprintf(c.out, "replayed %d to %s\n", m.Sequence, strings.TrimPrefix(m.Subject, events.SubjectDLQPrefix))
	}
	if len(chosen) == 0 {
		fmt.Fprintln(c.out, "nothing to replay")
	}
	return nil
}

// replay asks a bridge to republish one dead letter: the operator's NATS
// user may read dead letters but not publish inputs.
func (c *session) replay(ctx context.Context, m *jetstream.RawStreamMsg) error {
	body, _ := json.Marshal(ReplayRequest{Sequence: m.Sequence})
	msg, err := c.nc.RequestWithContext(ctx, SubjectReplay, body)
	if err != nil {
		return fmt.Errorf("no bridge answered on %s: %w", SubjectReplay, err)
	}
	var reply ReplayReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	if reply.Error != "" {
		return errors.New(reply.Error)
	}
	return nil
}
