package ctl

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/smartrent-bridge/bridge/internal/natsconn"
)

// connection is how smartrentctl reaches NATS: the `nats` CLI's flags
// and variables, over a `nats` CLI context (the selected one, or
// --context / NATS_CONTEXT). A flag or variable wins over the context,
// the context over the defaults. The envs tags name the variables, read
// through Run's getenv; NATS_TLS_* are this project's names of the same
// files.
type connection struct {
	Server      string        `short:"s" name:"server" aliases:"nats-url" envs:"NATS_URL" placeholder:"URL" help:"NATS server(s), comma-separated (env NATS_URL; default: the context's, or nats://127.0.0.1:4222)"`
	User        string        `envs:"NATS_USER" help:"NATS user (env NATS_USER)"`
	Password    string        `envs:"NATS_PASSWORD" help:"NATS password (env NATS_PASSWORD; never printed)"`
	Creds       string        `aliases:"nats-creds" envs:"NATS_CREDS" placeholder:"FILE" help:"NATS credentials file (env NATS_CREDS)"`
	NKey        string        `name:"nkey" envs:"NATS_NKEY,NATS_NKEY_SEED" placeholder:"FILE" help:"file with an nkey seed (env NATS_NKEY)"`
	TLSCert     string        `name:"tlscert" aliases:"nats-tls-cert" envs:"NATS_CERT,NATS_TLS_CERT" placeholder:"FILE" help:"client certificate, PEM (env NATS_CERT)"`
	TLSKey      string        `name:"tlskey" aliases:"nats-tls-key" envs:"NATS_KEY,NATS_TLS_KEY" placeholder:"FILE" help:"client certificate's key, PEM (env NATS_KEY)"`
	TLSCA       string        `name:"tlsca" aliases:"nats-tls-ca" envs:"NATS_CA,NATS_TLS_CA" placeholder:"FILE" help:"CA of the servers' certificates, PEM (env NATS_CA)"`
	Context     string        `envs:"NATS_CONTEXT" help:"nats CLI context to use (env NATS_CONTEXT; default: the selected one)"`
	InboxPrefix string        `name:"inbox-prefix" aliases:"nats-inbox-prefix" envs:"NATS_INBOX_PREFIX" help:"prefix of the subjects replies come on; the operator user may subscribe to <prefix>.> only (env NATS_INBOX_PREFIX; default: the context's, or _INBOX_operator)"`
	Timeout     time.Duration `default:"5s" help:"time to connect, and to wait for each answer"`
}

// natsContext is the part of a `nats` CLI context file
// (~/.config/nats/context/<name>.json) that says how to connect.
type natsContext struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`
}

// contextDir is where the nats CLI keeps its contexts.
func contextDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// loadContext reads the named context, or the selected one when name is
// empty. No context selected and none named is not an error.
func loadContext(name string, getenv func(string) string) (natsContext, string, error) {
	var c natsContext
	dir, err := contextDir(getenv)
	if err != nil {
		return c, "", err
	}
	if name == "" {
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if errors.Is(err, os.ErrNotExist) {
			return c, "", nil
		}
		if err != nil {
			return c, "", fmt.Errorf("nats context selection: %w", err)
		}
		if name = strings.TrimSpace(string(b)); name == "" {
			return c, "", nil
		}
	}
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
		return c, "", fmt.Errorf("nats context %q: not a context name", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, "context", name+".json"))
	if err != nil {
		return c, "", fmt.Errorf("nats context %q: %w", name, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, "", fmt.Errorf("nats context %q: %w", name, err)
	}
	return c, name, nil
}

// home expands a leading ~ as the nats CLI does in context paths.
func home(path string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, rest)
		}
	}
	return path
}

// connect dials NATS. Its errors name the server with any password in it
// redacted, and never the password.
func (c *connection) connect(getenv func(string) string) (*nats.Conn, error) {
	nctx, _, err := loadContext(c.Context, getenv)
	if err != nil {
		return nil, err
	}
	url := cmp.Or(c.Server, nctx.URL, nats.DefaultURL)
	opts := []nats.Option{
		nats.Name("smartrentctl"), nats.Timeout(c.Timeout),
		nats.CustomInboxPrefix(cmp.Or(c.InboxPrefix, nctx.InboxPrefix, natsconn.InboxOperator)),
	}
	// Credentials never stay in the URL (natsconn.Credentials says why).
	servers, urlUser, urlPassword, urlToken := natsconn.Credentials(url)
	user, password := cmp.Or(c.User, urlUser, nctx.User), cmp.Or(c.Password, urlPassword, nctx.Password)
	switch {
	case user != "":
		opts = append(opts, nats.UserInfo(user, password))
	case cmp.Or(urlToken, nctx.Token) != "":
		opts = append(opts, nats.Token(cmp.Or(urlToken, nctx.Token)))
	}
	if creds := cmp.Or(c.Creds, nctx.Creds); creds != "" {
		opts = append(opts, nats.UserCredentials(home(creds, getenv)))
	}
	if seed := cmp.Or(c.NKey, nctx.NKey); seed != "" {
		opt, err := nats.NkeyOptionFromSeed(home(seed, getenv))
		if err != nil {
			return nil, fmt.Errorf("nkey: %w", err)
		}
		opts = append(opts, opt)
	}
	cert, key := cmp.Or(c.TLSCert, nctx.Cert), cmp.Or(c.TLSKey, nctx.Key)
	if (cert == "") != (key == "") {
		return nil, usageError{errors.New("a TLS client certificate and its key go together (--tlscert, --tlskey)")}
	}
	if cert != "" {
		opts = append(opts, nats.ClientCert(home(cert, getenv), home(key, getenv)))
	}
	if ca := cmp.Or(c.TLSCA, nctx.CA); ca != "" {
		opts = append(opts, nats.RootCAs(home(ca, getenv)))
	}
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot reach NATS at %s: %s", natsconn.Redact(url), natsconn.RedactError(err, url, password, urlToken, nctx.Token))
	}
	return nc, nil
}
