// Package ctl is smartrentctl, the operator's command line: find an order
// and its history, list stuck orders, reconcile one now, and inspect and
// replay dead letters. It talks to NATS only.
package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/version"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
)

// The bridge's admin endpoints: reconcile one order; replay one dead
// letter (the bridge republishes it: an operator's credential cannot
// publish inputs).
const (
	SubjectReconcile = "smartrent.admin.reconcile"
	SubjectReplay    = "smartrent.admin.replay"
)

// ReplayRequest asks a bridge to replay the dead letter at Sequence.
type ReplayRequest struct {
	Sequence uint64 `json:"sequence"`
}

// ReplayReply is a bridge's answer on SubjectReplay.
type ReplayReply struct {
	Sequence uint64 `json:"sequence"`
	Subject  string `json:"subject,omitempty"` // where it was published again
	Found    bool   `json:"found"`
	Error    string `json:"error,omitempty"`
}

const usage = `smartrentctl: operate the Smart Rent bridge (talks to NATS only)

  smartrentctl [--nats-url URL] [--json] [--shop ALIAS] orders get <orderId>
  smartrentctl [--nats-url URL] [--json] orders list [--state S] [--older-than 2h]
  smartrentctl [--nats-url URL] [--json] [--shop ALIAS] orders reconcile <orderId>
  smartrentctl [--nats-url URL] [--json] dlq list [--subject S]
  smartrentctl [--nats-url URL] [--json] dlq show <seq>
  smartrentctl [--nats-url URL] dlq replay <seq> | --all [--subject S]
  smartrentctl --version

Exit codes: 0 done, 1 failed, 2 usage, 3 not found.
`

type cli struct {
	out, errOut io.Writer
	json        bool
	shop        string // the order's shop alias; "" is the default shop
	nc          *nats.Conn
	js          jetstream.JetStream
}

// Run runs one command and returns its exit code.
func Run(ctx context.Context, args []string, out, errOut io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("smartrentctl", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(errOut, usage) }
	url := getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	fs.StringVar(&url, "nats-url", url, "NATS server(s) (env NATS_URL)")
	creds := fs.String("nats-creds", getenv("NATS_CREDS"), "credentials file (env NATS_CREDS)")
	inbox := fs.String("nats-inbox-prefix", cmp.Or(getenv("NATS_INBOX_PREFIX"), natsconn.InboxOperator), "prefix of the subjects replies come on; the operator user may subscribe to <prefix>.> only (env NATS_INBOX_PREFIX)")
	tlsCA := fs.String("nats-tls-ca", getenv("NATS_TLS_CA"), "PEM file of the CA of the NATS servers' certificates (env NATS_TLS_CA)")
	tlsCert := fs.String("nats-tls-cert", getenv("NATS_TLS_CERT"), "PEM file of a client certificate (env NATS_TLS_CERT; with NATS_TLS_KEY)")
	tlsKey := fs.String("nats-tls-key", getenv("NATS_TLS_KEY"), "PEM file of the client certificate's key (env NATS_TLS_KEY)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	shop := fs.String("shop", "", "the order's shop alias (default: the default shop)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if *showVersion {
		fmt.Fprintln(out, "smartrentctl", version.Get())
		return ExitOK
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fmt.Fprint(errOut, usage)
		return ExitUsage
	}
	opts := []nats.Option{nats.Name("smartrentctl"), nats.Timeout(5 * time.Second), nats.CustomInboxPrefix(*inbox)}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(errOut, "smartrentctl: NATS_TLS_CERT and NATS_TLS_KEY go together")
		return ExitUsage
	}
	if *tlsCA != "" {
		opts = append(opts, nats.RootCAs(*tlsCA))
	}
	if *tlsCert != "" {
		opts = append(opts, nats.ClientCert(*tlsCert, *tlsKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		fmt.Fprintf(errOut, "smartrentctl: cannot reach NATS at %s: %v\n", natsconn.Redact(url), err)
		return ExitError
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c := &cli{out: out, errOut: errOut, json: *asJSON, shop: *shop, nc: nc, js: js}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var code int
	switch rest[0] + " " + rest[1] {
	case "orders get":
		code = c.ordersGet(ctx, rest[2:])
	case "orders list":
		code = c.ordersList(ctx, rest[2:])
	case "orders reconcile":
		code = c.ordersReconcile(ctx, rest[2:])
	case "dlq list":
		code = c.dlqList(ctx, rest[2:])
	case "dlq show":
		code = c.dlqShow(ctx, rest[2:])
	case "dlq replay":
		code = c.dlqReplay(ctx, rest[2:])
	default:
		fmt.Fprint(errOut, usage)
		return ExitUsage
	}
	return code
}

func (c *cli) fail(code int, format string, args ...any) int {
	fmt.Fprintf(c.errOut, "smartrentctl: "+format+"\n", args...)
	return code
}

func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.fail(ExitError, "%v", err)
	}
	return ExitOK
}

func (c *cli) store(ctx context.Context) (*events.StateStore[handlers.Order], error) {
	kv, err := c.js.KeyValue(ctx, events.BucketOrders)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", events.BucketOrders, err)
	}
	return events.NewStateStore[handlers.Order](kv), nil
}

func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", fmt.Errorf("want exactly one %s", what)
	}
	return args[0], nil
}

func (c *cli) ordersGet(ctx context.Context, args []string) int {
	id, err := oneArg(args, "order id")
	if err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	st, err := c.store(ctx)
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	if err := ids.CheckOrderID(id); err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	if err := ids.CheckShopAlias(c.shop); err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	o, rev, err := st.Load(ctx, events.StateKey(c.shop, id))
	if errors.Is(err, events.ErrNotFound) {
		return c.fail(ExitNotFound, "order %s not found", id)
	}
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	o.Placed = nil // the order's input is not an operator's business (and may hold personal data)
	if c.json {
		return c.printJSON(o)
	}
	c.printOrder(o, rev)
	return ExitOK
}

func (c *cli) printOrder(o handlers.Order, rev uint64) {
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("order", o.OrderID)
	row("shop", o.Shop)
	row("state", o.State)
	row("revision", strconv.FormatUint(rev, 10))
	row("product", o.ProductCode)
	row("session", o.SessionUUID)
	row("session status", o.SessionStatus)
	row("contract", o.ContractUUID)
	row("activated via", o.ActivatedVia)
	row("failure", o.Failure)
	row("created", o.CreatedAt.Format(time.RFC3339))
	row("updated", o.UpdatedAt.Format(time.RFC3339))
	if len(o.Outbox) > 0 {
		row("unpublished events", strconv.Itoa(len(o.Outbox)))
	}
	tw.Flush()
	fmt.Fprintln(c.out, "\nhistory")
	tw = tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	for _, h := range o.History {
		fmt.Fprintf(tw, "  %s\t%s\n", h.At.Format(time.RFC3339), h.What)
	}
	tw.Flush()
}

func (c *cli) ordersList(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("orders list", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	state := fs.String("state", "", "only orders in this state (new, pending, granted, activated, rejected, failed, declined, cancelled, expired)")
	older := fs.Duration("older-than", 0, "only orders whose last change is older than this")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	st, err := c.store(ctx)
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	type line struct {
		OrderID   string    `json:"orderId"`
		State     string    `json:"state"`
		Session   string    `json:"sessionStatus,omitempty"`
		UpdatedAt time.Time `json:"updatedAt"`
	}
	var lines []line
	now := time.Now()
	for o, err := range st.All(ctx) {
		if err != nil {
			return c.fail(ExitError, "%v", err)
		}
		if (*state != "" && o.State != *state) || now.Sub(o.UpdatedAt) < *older {
			continue
		}
		lines = append(lines, line{o.OrderID, o.State, o.SessionStatus, o.UpdatedAt})
	}
	slices.SortFunc(lines, func(a, b line) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	if c.json {
		if lines == nil {
			lines = []line{}
		}
		return c.printJSON(lines)
	}
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tSTATE\tSESSION\tUPDATED\tAGE")
	for _, l := range lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.OrderID, l.State, l.Session, l.UpdatedAt.Format(time.RFC3339), now.Sub(l.UpdatedAt).Round(time.Second))
	}
	tw.Flush()
	return ExitOK
}

// ReconcileReply is the bridge's answer to a reconcile request.
// ReconcileRequest asks a bridge to reconcile one order now.
type ReconcileRequest struct {
	OrderID string `json:"orderId"`
	Shop    string `json:"shop,omitempty"`
}

// ReconcileReply is a bridge's answer on SubjectReconcile.
type ReconcileReply struct {
	OrderID string `json:"orderId"`
	State   string `json:"state,omitempty"`
	Error   string `json:"error,omitempty"`
	Found   bool   `json:"found"`
}

func (c *cli) ordersReconcile(ctx context.Context, args []string) int {
	id, err := oneArg(args, "order id")
	if err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	body, _ := json.Marshal(ReconcileRequest{OrderID: id, Shop: c.shop})
	m, err := c.nc.RequestWithContext(ctx, SubjectReconcile, body)
	if err != nil {
		return c.fail(ExitError, "no bridge answered on %s: %v", SubjectReconcile, err)
	}
	var r ReconcileReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return c.fail(ExitError, "bad reply: %v", err)
	}
	if c.json {
		if code := c.printJSON(r); code != ExitOK {
			return code
		}
	}
	switch {
	case !r.Found:
		return c.fail(ExitNotFound, "order %s not found", id)
	case r.Error != "":
		return c.fail(ExitError, "order %s not reconciled: %s", id, r.Error)
	}
	if !c.json {
		fmt.Fprintf(c.out, "order %s reconciled: %s\n", id, r.State)
	}
	return ExitOK
}

// deadLetter is one message of SMARTRENT_DLQ.
type deadLetter struct {
	Seq        uint64              `json:"seq"`
	Subject    string              `json:"subject"`
	Original   string              `json:"originalSubject"`
	Time       time.Time           `json:"time"`
	Reason     string              `json:"reason"`
	Deliveries string              `json:"deliveries"`
	OrderID    string              `json:"orderId,omitempty"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       json.RawMessage     `json:"body,omitempty"`
}

func toDeadLetter(m *jetstream.RawStreamMsg, full bool) deadLetter {
	d := deadLetter{
		Seq: m.Sequence, Subject: m.Subject, Original: strings.TrimPrefix(m.Subject, events.SubjectDLQPrefix), Time: m.Time,
		Reason: m.Header.Get(events.HeaderDLQReason), Deliveries: m.Header.Get(events.HeaderDLQDeliveries),
	}
	var probe struct {
		Subject string `json:"subject"`
		Data    struct {
			OrderID string `json:"orderId"`
		} `json:"data"`
		OrderID string `json:"orderId"`
	}
	if json.Unmarshal(m.Data, &probe) == nil {
		d.OrderID = probe.Subject
		if d.OrderID == "" {
			d.OrderID = probe.Data.OrderID + probe.OrderID
		}
	}
	if full {
		d.Headers = m.Header
		if json.Valid(m.Data) {
			d.Body = m.Data
		} else {
			d.Body, _ = json.Marshal(string(m.Data))
		}
	}
	return d
}

func (c *cli) dlqMessages(ctx context.Context, subject string) (jetstream.Stream, []*jetstream.RawStreamMsg, error) {
	s, all, err := events.StreamMessages(ctx, c.js, events.StreamDLQ)
	if err != nil {
		return nil, nil, err
	}
	var out []*jetstream.RawStreamMsg
	for _, m := range all {
		if subject == "" || strings.TrimPrefix(m.Subject, events.SubjectDLQPrefix) == subject || m.Subject == subject {
			out = append(out, m)
		}
	}
	return s, out, nil
}

func (c *cli) dlqList(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	subject := fs.String("subject", "", "only dead letters of this original subject")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	_, msgs, err := c.dlqMessages(ctx, *subject)
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	list := []deadLetter{}
	for _, m := range msgs {
		list = append(list, toDeadLetter(m, false))
	}
	if c.json {
		return c.printJSON(list)
	}
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSUBJECT\tORDER\tTIME\tDELIVERIES\tREASON")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Original, d.OrderID, d.Time.Format(time.RFC3339), d.Deliveries, d.Reason)
	}
	tw.Flush()
	return ExitOK
}

func (c *cli) dlqShow(ctx context.Context, args []string) int {
	arg, err := oneArg(args, "sequence number")
	if err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return c.fail(ExitUsage, "sequence %q is not a number", arg)
	}
	s, err := c.js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return c.fail(ExitNotFound, "no dead letter %d", seq)
	}
	if err != nil {
		return c.fail(ExitError, "%v", err)
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
	return ExitOK
}

// dlqReplay republishes dead letters to their original subject with a new
// event id, and removes each from the DLQ only after its PubAck.
func (c *cli) dlqReplay(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	all := fs.Bool("all", false, "replay every dead letter (with --subject: of that subject)")
	subject := fs.String("subject", "", "only dead letters of this original subject")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	var want uint64
	switch {
	case *all && fs.NArg() == 0:
	case !*all && fs.NArg() == 1:
		v, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if err != nil {
			return c.fail(ExitUsage, "sequence %q is not a number", fs.Arg(0))
		}
		want = v
	default:
		return c.fail(ExitUsage, "give one sequence number or --all")
	}
	_, msgs, err := c.dlqMessages(ctx, *subject)
	if err != nil {
		return c.fail(ExitError, "%v", err)
	}
	replayed := 0
	for _, m := range msgs {
		if want != 0 && m.Sequence != want {
			continue
		}
		if err := c.replay(ctx, m); err != nil {
			return c.fail(ExitError, "replay %d: %v", m.Sequence, err)
		}
		replayed++
		fmt.Fprintf(c.out, "replayed %d to %s\n", m.Sequence, strings.TrimPrefix(m.Subject, events.SubjectDLQPrefix))
	}
	if want != 0 && replayed == 0 {
		return c.fail(ExitNotFound, "no dead letter %d", want)
	}
	if replayed == 0 {
		fmt.Fprintln(c.out, "nothing to replay")
	}
	return ExitOK
}

// replay asks a bridge to republish one dead letter: the operator's NATS
// user may read dead letters but not publish inputs.
func (c *cli) replay(ctx context.Context, m *jetstream.RawStreamMsg) error {
	body, _ := json.Marshal(ReplayRequest{Sequence: m.Sequence})
	msg, err := c.nc.RequestWithContext(ctx, SubjectReplay, body)
	if err != nil {
		return fmt.Errorf("no bridge answered on %s: %w", SubjectReplay, err)
	}
	var r ReplayReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}
