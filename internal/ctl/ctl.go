// Package ctl is smartrentctl, the operator's command line: find an order
// and its history, list stuck orders, reconcile one now, and inspect and
// replay dead letters. It talks to NATS only.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/streams"
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

// Usage errors are answered with exit code 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitError ends a command with its exit code.
type exitError struct {
	code int
	error
}

func (e exitError) Unwrap() error { return e.error }

// failf is an error that ends the command with code.
func failf(code int, format string, args ...any) error {
	return exitError{code, fmt.Errorf(format, args...)}
}

// command line: kong (github.com/alecthomas/kong) parses it, so global
// flags go anywhere (`orders list --json`), --help and errors in the
// command line never need NATS, and each command has its own help.
type commandLine struct {
	connection `embed:""`
	Output     string           `short:"o" enum:"table,json" default:"table" help:"table or json"`
	JSON       bool             `help:"same as -o json"`
	Shop       string           `help:"the order's shop alias (default: the default shop; orders list: only this shop)"`
	Version    kong.VersionFlag `help:"print the version and exit"`

	Orders struct {
		Get       ordersGet       `cmd:"" help:"an order's state and history"`
		List      ordersList      `cmd:"" help:"orders that may still need Inbank (the open-order index), oldest change first"`
		Reconcile ordersReconcile `cmd:"" help:"re-read an order from Inbank now (a bridge does it)"`
	} `cmd:"" help:"orders"`
	DLQ struct {
		List   dlqList   `cmd:"" help:"dead letters"`
		Show   dlqShow   `cmd:"" help:"one dead letter, with headers and body"`
		Replay dlqReplay `cmd:"" help:"publish dead letters again as new events (a bridge does it) and remove them"`
	} `cmd:"" name:"dlq" help:"dead letters (SMARTRENT_DLQ)"`
}

// session is one smartrentctl command's run: where it prints, its global
// flags, and its NATS connection once dialled.
type session struct {
	out, errOut io.Writer
	json        bool
	shop        string // the order's shop alias; "" is the default shop
	getenv      func(string) string
	conn        *connection
	nc          *nats.Conn
	js          jetstream.JetStream
}

// dial connects on first use: commands that fail on their arguments, and
// --help, never need NATS.
func (c *session) dial() error {
	if c.nc != nil {
		return nil
	}
	nc, err := c.conn.connect(c.getenv)
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return u
		}
		return failf(ExitError, "%v", err)
	}
	c.nc = nc
	c.js, _ = jetstream.New(nc)
	return nil
}

// kongExit is what kong's exit (after --help or --version) panics with,
// so Run returns the code instead of ending the process.
type kongExit int

// Run runs one command and returns its exit code.
func Run(ctx context.Context, args []string, out, errOut io.Writer, getenv func(string) string) (code int) {
	var cl commandLine
	parser, err := kong.New(&cl,
		kong.Name("smartrentctl"),
		kong.Description("Operate the Smart Rent bridge (talks to NATS only). Connection flags and variables are the nats CLI's, over its selected context.\n\nExit codes: 0 done, 1 failed, 2 usage, 3 not found."),
		kong.Writers(out, errOut),
		kong.Exit(func(code int) { panic(kongExit(code)) }),
		kong.Vars{"version": "smartrentctl " + version.Get().String()},
		kong.Resolvers(envResolver(getenv)),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintln(errOut, "smartrentctl:", err)
		return ExitError
	}
	defer func() {
		if r := recover(); r != nil {
			exit, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(exit)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(errOut, "smartrentctl: %v (see smartrentctl --help)\n", err)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := &session{out: out, errOut: errOut, json: cl.JSON || cl.Output == "json", shop: cl.Shop, getenv: getenv, conn: &cl.connection}
	defer func() {
		if c.nc != nil {
			c.nc.Close()
		}
	}()
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(c)
	var exit exitError
	var usage usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(errOut, "smartrentctl: %v (see smartrentctl %s --help)\n", err, kctx.Command())
		return ExitUsage
	case errors.As(err, &exit):
		fmt.Fprintln(errOut, "smartrentctl:", err)
		return exit.code
	default:
		fmt.Fprintln(errOut, "smartrentctl:", err)
		return ExitError
	}
}

// envResolver reads a flag's variables (its envs tag) through getenv,
// for the flags the command line did not set.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range strings.Split(flag.Tag.Get("envs"), ",") {
			if v := getenv(strings.TrimSpace(name)); name != "" && v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}

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
		Reason: m.Header.Get(streams.HeaderDLQReason), Deliveries: m.Header.Get(streams.HeaderDLQDeliveries),
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
