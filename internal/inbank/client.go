// Package inbank is a client for the Inbank Smart Rent e-POS partner API v3.
//
// It has one method per documented call (see the API documents the
// fake in inbanktest follows): rental conditions, calculation, session
// creation and read, asset identifiers, activation and contract read, and
// [Guard], which bounds a shop's calls in flight and opens a circuit when
// Inbank keeps failing. What the calls send and answer (resources,
// statuses, error kinds) is data in package inbankapi, so that code which
// decides on it needs no HTTP. Requests are validated before they are sent
// ([*inbankapi.ValidationError]); answers other than 2xx come back as
// [*inbankapi.APIError], network failures as [*inbankapi.TransportError];
// [inbankapi.IsTransient] tells a failure worth retrying from a permanent
// one. The client itself never retries: whether a call may be repeated is
// the caller's decision, since Inbank has no idempotency keys.
package inbank

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// Operation names, used in errors and as metric labels.
const (
	OpGetRentalConditions    = "get_rental_conditions"
	OpCalculate              = "calculate"
	OpCreateSession          = "create_session"
	OpGetSession             = "get_session"
	OpAssignAssetIdentifiers = "assign_asset_identifiers"
	OpActivateContract       = "activate_contract"
	OpGetContract            = "get_contract"
)

// Secret is a string that never prints: String, GoString, slog and JSON all
// show a placeholder. Use Reveal where the value is really needed.
type Secret string

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// Format covers %v, %s, %q, %x and every other verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// Config is what a client needs to reach one Inbank shop.
type Config struct {
	// BaseURL is scheme + host (+ optional prefix), without /partner/v3.
	BaseURL string
	// APIKey is sent as a Bearer token and nowhere else.
	APIKey Secret
	// ShopUUID identifies the partner's shop.
	ShopUUID string
	// Timeout bounds each request; 0 means 15 s.
	Timeout time.Duration
	// ShopAlias names the shop in metrics (ids.DefaultShop when empty).
	ShopAlias string
}

// DefaultTimeout bounds a request when [Config.Timeout] is zero.
const DefaultTimeout = 15 * time.Second

// Client calls one Inbank shop. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	apiKey   atomic.Pointer[Secret]
	alias    string
	shopUUID string
	timeout  time.Duration
	hc       *http.Client
	metrics  *Metrics
	now      func() time.Time
}

// DefaultTransport is [Transport] for 256 calls in flight.
func DefaultTransport() *http.Transport { return Transport(256) }

// Transport keeps an idle connection for each of inFlight calls (at
// least 256) to one host: the standard transport keeps 2 per host, so a
// bridge with dozens of calls in flight would dial (and TLS-handshake) a
// new connection for most of them, and one with more calls in flight
// than idle connections closes the surplus after each burst and dials
// it again for the next (at C = 256 orders in flight, an allocation
// profile of the bridge held the buffers of some 4,900 new connections
// after a few seconds).
// Idle connections close after 90 s.
func Transport(inFlight int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(inFlight, 256)
	t.MaxIdleConns = 2 * t.MaxIdleConnsPerHost
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Option configures a [Client].
type Option func(*Client) error

// WithHTTPClient replaces the default http.Client.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("nil http client")
		}
		c.hc = hc
		return nil
	}
}

// WithMetrics records every request in m.
func WithMetrics(m *Metrics) Option {
	return func(c *Client) error {
		c.metrics = m
		return nil
	}
}

// New returns a client for the shop in cfg. BaseURL, APIKey and ShopUUID are
// required.
func New(cfg Config, opts ...Option) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("inbank: base URL is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("inbank: base URL %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if strings.Contains(u.Path, "/partner/v3") {
		return nil, fmt.Errorf("inbank: base URL %q must not contain /partner/v3: the client appends it", cfg.BaseURL)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("inbank: API key is required")
	}
	if cfg.ShopUUID == "" {
		return nil, errors.New("inbank: shop uuid is required")
	}
	c := &Client{
		base:     u,
		alias:    cfg.ShopAlias,
		shopUUID: cfg.ShopUUID,
		timeout:  cfg.Timeout,
		hc:       &http.Client{Transport: DefaultTransport()},
		now:      time.Now,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.alias = ids.ShopName(c.alias)
	c.SetAPIKey(cfg.APIKey)
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("inbank: %w", err)
		}
	}
	// The API key travels in the Authorization header; a redirect (to
	// another host, or the same host over http) must not take it along.
	// The partner API documents no redirect, so none is followed: the 3xx
	// comes back as an *inbankapi.APIError, and is not retried.
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

// SetAPIKey replaces the API key for the requests that follow (a rotated
// key file re-read on SIGHUP). An empty key is ignored.
func (c *Client) SetAPIKey(k Secret) {
	if k != "" {
		c.apiKey.Store(&k)
	}
}

// String describes the client without its API key.
func (c *Client) String() string {
	return fmt.Sprintf("inbank.Client{base: %s, shop: %s}", c.base, c.shopUUID)
}

// ShopUUID returns the shop this client calls.
func (c *Client) ShopUUID() string { return c.shopUUID }

func (c *Client) shopPath(parts ...string) string {
	p := "/partner/v3/shops/" + url.PathEscape(c.shopUUID)
	for _, s := range parts {
		p += "/" + s
	}
	return p
}

// inbankapi.RentalConditions returns the rental conditions of the model identified by
// identifierType (EAN or MANUFACTURER_PRODUCT_CODE) and identifier under
// productCode. A model Inbank does not rent gives an error matching
// [inbankapi.ErrNotFound].
func (c *Client) RentalConditions(ctx context.Context, productCode, identifierType, identifier string) (inbankapi.RentalConditions, error) {
	var out inbankapi.RentalConditions
	if err := inbankapi.Required("productCode", productCode); err != nil {
		return out, err
	}
	if err := inbankapi.ValidModelIdentifierType("identifierType", identifierType); err != nil {
		return out, err
	}
	if err := inbankapi.Required("identifier", identifier); err != nil {
		return out, err
	}
	q := url.Values{"identifierType": {identifierType}, "identifier": {identifier}}
	p := c.shopPath("rental", "products", url.PathEscape(productCode), "detailed-asset-model") + "?" + q.Encode()
	err := c.do(ctx, OpGetRentalConditions, http.MethodGet, p, nil, &out)
	return out, err
}

// Calculate returns the monthly payment for the assets in req.
func (c *Client) Calculate(ctx context.Context, productCode string, req inbankapi.CalculationRequest) (inbankapi.Calculation, error) {
	var out inbankapi.Calculation
	if err := inbankapi.Required("productCode", productCode); err != nil {
		return out, err
	}
	if err := req.Validate(); err != nil {
		return out, err
	}
	p := c.shopPath("rental", "products", url.PathEscape(productCode), "calculations")
	err := c.do(ctx, OpCalculate, http.MethodPost, p, req, &out)
	return out, err
}

// CreateSession starts a payment session. Inbank has no idempotency key:
// every successful call creates a new session.
func (c *Client) CreateSession(ctx context.Context, req inbankapi.SessionRequest) (inbankapi.CreatedSession, error) {
	var out inbankapi.CreatedSession
	if err := req.Validate(); err != nil {
		return out, err
	}
	err := c.do(ctx, OpCreateSession, http.MethodPost, c.shopPath("pos-sessions"), req, &out)
	if err == nil && out.UUID == "" {
		err = fmt.Errorf("inbank %s: response has no session uuid", OpCreateSession)
	}
	return out, err
}

// inbankapi.Session reads a payment session.
func (c *Client) Session(ctx context.Context, sessionUUID string) (inbankapi.Session, error) {
	var out inbankapi.Session
	if err := inbankapi.Required("posSessionUuid", sessionUUID); err != nil {
		return out, err
	}
	err := c.do(ctx, OpGetSession, http.MethodGet, c.shopPath("pos-sessions", url.PathEscape(sessionUUID)), nil, &out)
	return out, err
}

// AssignAssetIdentifiers gives the contract's hero device its identifiers.
// Assigning the same identifiers again is harmless.
func (c *Client) AssignAssetIdentifiers(ctx context.Context, productCode, contractUUID string, req inbankapi.AssetIdentifiersRequest) error {
	if err := inbankapi.Required("productCode", productCode); err != nil {
		return err
	}
	if err := inbankapi.Required("contractUuid", contractUUID); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	p := c.shopPath("rental", "products", url.PathEscape(productCode), "contracts", url.PathEscape(contractUUID), "asset-identifiers")
	return c.do(ctx, OpAssignAssetIdentifiers, http.MethodPatch, p, req, nil)
}

// ActivateContract approves the rental. Identifiers must be assigned first.
func (c *Client) ActivateContract(ctx context.Context, productCode, contractUUID string) error {
	if err := inbankapi.Required("productCode", productCode); err != nil {
		return err
	}
	if err := inbankapi.Required("contractUuid", contractUUID); err != nil {
		return err
	}
	p := c.shopPath("rental", "products", url.PathEscape(productCode), "contracts", url.PathEscape(contractUUID), "activation")
	return c.do(ctx, OpActivateContract, http.MethodPost, p, nil, nil)
}

// inbankapi.Contract reads a contract; [inbankapi.ContractActivated] means the rental is in force.
func (c *Client) Contract(ctx context.Context, contractUUID string) (inbankapi.Contract, error) {
	var out inbankapi.Contract
	if err := inbankapi.Required("contractUuid", contractUUID); err != nil {
		return out, err
	}
	err := c.do(ctx, OpGetContract, http.MethodGet, c.shopPath("contracts", url.PathEscape(contractUUID)), nil, &out)
	return out, err
}

// maxBody bounds what is read of any response.
const maxBody = 1 << 20

func (c *Client) do(ctx context.Context, op, method, path string, in, out any) (err error) {
	start := c.now()
	status := 0
	defer func() { c.metrics.observe(c.alias, op, status, err, c.now().Sub(start)) }()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("inbank %s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	rel, err := url.Parse(path)
	if err != nil {
		return fmt.Errorf("inbank %s: build URL: %w", op, err)
	}
	u.Path = strings.TrimRight(u.Path, "/") + rel.Path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		u.RawPath = strings.TrimRight(c.base.EscapedPath(), "/") + rel.EscapedPath()
	}
	u.RawQuery = rel.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("inbank %s: build request: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey.Load().Reveal())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error prints the URL, which holds no secret; the key is only
		// in the header.
		return &inbankapi.TransportError{Op: op, Err: err}
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &inbankapi.TransportError{Op: op, Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeAPIError(op, resp.StatusCode, resp.Header.Get("Retry-After"), raw, c.now())
	}
	if out == nil {
		return nil
	}
	if err := decodeBody(raw, out); err != nil {
		return fmt.Errorf("inbank %s: decode %d response: %w", op, resp.StatusCode, err)
	}
	return nil
}

// decodeBody decodes a 2xx JSON body. An empty body is an error where a
// value is expected.
func decodeBody(raw []byte, out any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("empty body")
	}
	return json.Unmarshal(raw, out)
}

// decodeAPIError builds an [*inbankapi.APIError] from any body: documented JSON, other
// JSON, HTML, or a truncated body.
func decodeAPIError(op string, status int, retryAfter string, raw []byte, now time.Time) *inbankapi.APIError {
	e := &inbankapi.APIError{Op: op, Status: status, RetryAfter: parseRetryAfter(retryAfter, now)}
	var body struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	if err := json.Unmarshal(raw, &body); err == nil && (body.Message != "" || body.ErrorCode != "") {
		e.Message, e.ErrorCode = excerpt([]byte(body.Message)), excerpt([]byte(body.ErrorCode))
		return e
	}
	e.Message = excerpt(raw)
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	if e.Message == "" {
		e.Message = "status " + strconv.Itoa(status)
	}
	return e
}
