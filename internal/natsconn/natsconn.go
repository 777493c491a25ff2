// Package natsconn connects a binary to NATS the same way everywhere: the
// contract's settings (NATS_URL, NATS_CREDS, NATS_CONNECT_TIMEOUT, the
// topology overrides), a bounded first connection, endless reconnects after
// it, and connection events in the log.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// Settings are the NATS settings of both binaries.
type Settings struct {
	URL            string
	Creds          string
	NkeySeed       string // file holding the seed of this binary's nkey
	User, Password string // a user of deploy/nats/nats-server-secure.conf
	ConnectTimeout time.Duration
	// SetupTimeout bounds creating (or checking) the streams, buckets and
	// consumers after connecting; 0 (the default) waits as long as it
	// takes, up and not ready. A fresh three-node cluster first elects its
	// leaders (up to 26 s in tests), and a GitOps controller may create
	// the streams after the binaries start: exiting there was a crash loop
	// on fresh installs.
	SetupTimeout time.Duration
	Topology     streams.Topology
	// Provision creates or updates streams, bucket and consumers at
	// start-up; false only checks that they exist as defined (for a NATS
	// user without JetStream admin rights).
	Provision bool
	// NoReconnectBuffer makes a publish while the connection is down fail
	// at once instead of waiting in nats.go's reconnect buffer. A caller
	// that answers someone (the ingress's 503) must not have its message
	// stored after it said it was not: a buffered message is sent when the
	// connection comes back, whatever the caller answered meanwhile.
	NoReconnectBuffer bool
	// InboxPrefix replaces nats.go's _INBOX for every reply this binary
	// receives (JetStream acknowledgements, KV gets, consumer fetches).
	// Each component has its own, so a NATS user may be allowed to
	// subscribe to its own replies only: under the shared _INBOX.> every
	// user could read every other one's, customer data included.
	InboxPrefix string
	// TLS to NATS: the CA that signed the servers' certificates (PEM
	// file), and this binary's client certificate and key when the server
	// verifies clients. A tls:// URL with no CA uses the system's roots.
	TLSCA, TLSCert, TLSKey string
}

// Bind defines the NATS flags on fs and returns the settings they fill;
// inbox is the binary's default inbox prefix (e.g. _INBOX_bridge).
func Bind(fs *cli.Flags, inbox string) *Settings {
	s := &Settings{Topology: streams.DefaultTopology()}
	d := s.Topology
	fs.StringVar(&s.URL, "nats-url", "NATS_URL", nats.DefaultURL, "NATS server(s), comma-separated")
	fs.StringVar(&s.Creds, "nats-creds", "NATS_CREDS", "", "NATS credentials file (optional)")
	fs.StringVar(&s.NkeySeed, "nats-nkey-seed", "NATS_NKEY_SEED", "", "file with this binary's NATS nkey seed, for nkey authentication (optional; never logged)")
	fs.StringVar(&s.User, "nats-user", "NATS_USER", "", "NATS user (optional; with NATS_PASSWORD)")
	fs.StringVar(&s.Password, "nats-password", "NATS_PASSWORD", "", "NATS password (optional; NATS_PASSWORD_FILE reads it from a file; never logged)")
	fs.StringVar(&s.InboxPrefix, "nats-inbox-prefix", "NATS_INBOX_PREFIX", inbox, "prefix of the subjects this binary receives replies on; the NATS user needs subscribe permission on <prefix>.> only")
	fs.StringVar(&s.TLSCA, "nats-tls-ca", "NATS_TLS_CA", "", "PEM file of the CA that signed the NATS servers' certificates (TLS to NATS)")
	fs.StringVar(&s.TLSCert, "nats-tls-cert", "NATS_TLS_CERT", "", "PEM file of this binary's client certificate, when NATS verifies clients (with NATS_TLS_KEY)")
	fs.StringVar(&s.TLSKey, "nats-tls-key", "NATS_TLS_KEY", "", "PEM file of the client certificate's key (never logged)")
	fs.BoolVar(&s.Provision, "provision", "PROVISION", true, "create or update streams, bucket and consumers at start-up; false: only check them (least-privilege NATS users)")
	fs.DurationVar(&s.ConnectTimeout, "nats-connect-timeout", "NATS_CONNECT_TIMEOUT", 10*time.Second, "give up start-up when NATS cannot be reached within this time")
	fs.DurationVar(&s.SetupTimeout, "nats-setup-timeout", "NATS_SETUP_TIMEOUT", 0, "give up start-up when streams, buckets and consumers cannot be set up within this time; 0: wait, not ready, until they can (a new cluster elects leaders first)")
	fs.IntVar(&s.Topology.Replicas, "nats-replicas", "NATS_REPLICAS", d.Replicas, "replicas of streams and the KV bucket (1, or 3 on a cluster)")
	fs.DurationVar(&s.Topology.InMaxAge, "stream-in-max-age", "STREAM_IN_MAX_AGE", d.InMaxAge, "how long SMARTRENT_IN keeps events")
	fs.DurationVar(&s.Topology.OutMaxAge, "stream-out-max-age", "STREAM_OUT_MAX_AGE", d.OutMaxAge, "how long SMARTRENT_OUT keeps events")
	fs.DurationVar(&s.Topology.DLQMaxAge, "stream-dlq-max-age", "STREAM_DLQ_MAX_AGE", d.DLQMaxAge, "how long SMARTRENT_DLQ keeps dead letters")
	fs.Int64Var(&s.Topology.MaxBytes, "stream-max-bytes", "STREAM_MAX_BYTES", d.MaxBytes, "size limit of SMARTRENT_IN, SMARTRENT_OUT and SMARTRENT_DLQ in bytes (-1 = none); a full stream refuses new events")
	fs.DurationVar(&s.Topology.CallbacksMaxAge, "stream-callbacks-max-age", "STREAM_CALLBACKS_MAX_AGE", d.CallbacksMaxAge, "how long SMARTRENT_CALLBACKS keeps Inbank callbacks")
	fs.Int64Var(&s.Topology.CallbacksMaxBytes, "stream-callbacks-max-bytes", "STREAM_CALLBACKS_MAX_BYTES", d.CallbacksMaxBytes, "size limit of SMARTRENT_CALLBACKS in bytes (at least 1 MiB; always bounded); when full, its oldest callbacks go")
	fs.DurationVar(&s.Topology.DuplicateWindow, "duplicate-window", "DUPLICATE_WINDOW", d.DuplicateWindow, "de-duplication window of Nats-Msg-Id (at least 2m)")
	return s
}

// Inbox prefixes of the product's own connections, as
// deploy/nats/nats-server-secure.conf allows each user to subscribe to.
const (
	InboxBridge   = "_INBOX_bridge"
	InboxIngress  = "_INBOX_ingress"
	InboxOperator = "_INBOX_operator" // smartrentctl
	InboxAdmin    = "_INBOX_admin"    // bridge provision
)

// ErrPermissionDenied is NATS refusing a publish or subscription of the
// binary's own: its user lacks a permission it needs.
var ErrPermissionDenied = errors.New("the NATS user lacks a permission this binary needs")

// ErrConnectionLost is a connection NATS closed for good: the client
// reconnects after disconnections, but the server can end a connection in
// ways nats.go does not retry (an unknown -ERR such as "Maximum Control
// Line Exceeded", revoked credentials seen twice).
var ErrConnectionLost = errors.New("NATS closed the connection for good")

// Connect opens the connection within s.ConnectTimeout (or ctx), then
// reconnects forever. name appears in the server's connection list. lost
// is called (once) when the connection is closed for good while ctx is
// still live, so the binary can exit and its supervisor restart it
// instead of running on as a zombie.
func Connect(ctx context.Context, s *Settings, name string, log *slog.Logger, lost func(error)) (*nats.Conn, jetstream.JetStream, error) {
	live := ctx
	opts := []nats.Option{
		nats.ClosedHandler(func(nc *nats.Conn) {
			if live.Err() != nil {
				return // shutting down: a deliberate close
			}
			cause := nc.LastError()
			log.Error("NATS closed the connection for good; stopping so that the supervisor restarts the process", "err", cause)
			if lost != nil {
				lost(fmt.Errorf("%w: %v", ErrConnectionLost, cause))
			}
		}),
		nats.Name(name),
		nats.Timeout(s.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // a deliberate close or drain
			}
			log.Warn("nats disconnected; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if errors.Is(err, nats.ErrPermissionViolation) && lost != nil && live.Err() == nil {
				// The binary's NATS user lacks a permission it needs: the
				// write (or subscription) would otherwise wait for an
				// answer that never comes. Stop, saying which.
				log.Error("NATS refused a permission this binary needs; stopping: grant it to the binary's NATS user", "subject", subj, "err", err)
				lost(fmt.Errorf("%w: %v", ErrPermissionDenied, err))
				return
			}
			log.Error("nats async error", "subject", subj, "err", err)
		}),
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return nil, nil, errors.New("NATS_TLS_CERT and NATS_TLS_KEY go together")
	}
	if s.TLSCA != "" {
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	if s.TLSCert != "" {
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	if s.NoReconnectBuffer {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(s.NkeySeed)
		if err != nil {
			return nil, nil, fmt.Errorf("NATS_NKEY_SEED: %w", err)
		}
		opts = append(opts, opt)
	}
	servers, urlUser, urlPassword, urlToken := Credentials(s.URL)
	switch {
	case s.User != "":
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	case urlUser != "":
		opts = append(opts, nats.UserInfo(urlUser, urlPassword))
	case urlToken != "":
		opts = append(opts, nats.Token(urlToken))
	}
	ctx, cancel := context.WithTimeout(ctx, s.ConnectTimeout)
	defer cancel()
	var nc *nats.Conn
	var err error
	for {
		nc, err = nats.Connect(servers, opts...)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("cannot reach NATS at %s within %s: %s", Redact(s.URL), s.ConnectTimeout, RedactError(err, s.URL, s.Password, urlPassword, urlToken))
		case <-time.After(250 * time.Millisecond):
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Ready reports whether nc is connected and the stream exists.
func Ready(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, streams ...string) error {
	if !nc.IsConnected() {
		return errors.New("nats is not connected")
	}
	for _, stream := range streams {
		if _, err := js.Stream(ctx, stream); err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
	}
	return nil
}

// Drain drains nc (subscriptions finish what they hold, pending publishes
// are flushed) and waits until it is closed or timeout passes.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		if nc.IsClosed() {
			return nil
		}
		return fmt.Errorf("drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return errors.New("drain: timed out; connection closed")
	}
}

// Redact returns the server list with any password or token in it
// replaced, for messages and logs.
func Redact(servers string) string {
	redacted, _ := redact(servers)
	return redacted
}

// Credentials moves a user and password (or a token) out of the server
// list: nats.go quotes a server it cannot parse in its error, and a "/"
// or "@" in a password makes it unparsable, so a URL with credentials
// must never reach it. It returns the servers without credentials and the
// first server's credentials, to give nats.go as options.
func Credentials(servers string) (clean, user, password, token string) {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		sv := parseServer(p)
		parts[i] = sv.scheme + sv.host
		if !sv.hasUserinfo || user != "" || token != "" {
			continue
		}
		if sv.hasPassword {
			user, password = sv.user, sv.password
		} else {
			token = sv.user
		}
	}
	return strings.Join(parts, ","), user, password, token
}

// server is one entry of a server list, split as nats.go reads it.
type server struct {
	scheme, user, password, host string // scheme with its "://"; user is a token when there is no password
	hasUserinfo, hasPassword     bool
}

// parseServer splits one server of a list. Not url.Parse: nats.go takes a
// server without a scheme (user:pass@host), and a password with "/" or
// "@" in it, both of which url.Parse misreads, leaving the password in
// what it returns.
func parseServer(p string) server {
	var sv server
	p = strings.TrimSpace(p)
	if s, rest, ok := strings.Cut(p, "://"); ok {
		sv.scheme, p = s+"://", rest
	}
	at := strings.LastIndex(p, "@") // the host has none; a password may
	if at < 0 {
		sv.host = p
		return sv
	}
	sv.hasUserinfo, sv.host = true, p[at+1:]
	sv.user, sv.password, sv.hasPassword = strings.Cut(p[:at], ":")
	return sv
}

// RedactError returns err's message without any password or token of
// servers (nats.go repeats a server it cannot parse verbatim), nor the
// extra secrets given.
func RedactError(err error, servers string, secrets ...string) string {
	msg := err.Error()
	_, found := redact(servers)
	for _, secret := range append(found, secrets...) {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "redacted")
		}
	}
	return msg
}

// redact returns the server list redacted and the secrets it held.
func redact(servers string) (string, []string) {
	var secrets []string
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		sv := parseServer(p)
		switch {
		case !sv.hasUserinfo:
			parts[i] = sv.scheme + sv.host
		case sv.hasPassword:
			parts[i] = sv.scheme + sv.user + ":redacted@" + sv.host
			secrets = append(secrets, sv.password)
		default:
			parts[i] = sv.scheme + "redacted@" + sv.host // a token
			secrets = append(secrets, sv.user)
		}
	}
	return strings.Join(parts, ","), secrets
}
