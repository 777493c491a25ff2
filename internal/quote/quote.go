// Package quote answers product pages and carts over NATS request-reply
// (a NATS micro service named smartrent): whether a device can be rented
// and for how much a month. Rental conditions and calculations are cached
// with TTLs, and concurrent identical misses make one Inbank call, so a
// busy catalogue page costs Inbank almost nothing.
package quote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/ttlcache"
	"github.com/smartrent-bridge/bridge/schemas"
)

// Subjects of the service's endpoints.
const (
	ServiceName         = "smartrent"
	SubjectConditions   = "smartrent.conditions"
	SubjectQuote        = "smartrent.quote"
	SubjectQuoteBatch   = "smartrent.quote.batch"
	MaxBatch            = 50
	ReasonNotEligible   = "NOT_ELIGIBLE"       // Inbank refused the calculation for a reason we did not check
	ReasonUnavailable   = "INBANK_UNAVAILABLE" // 503
	ReasonDeadline      = "DEADLINE"           // 504
	reasonInvalidInput  = events.ReasonInvalidOrder
	reasonNotRentable   = events.ReasonModelNotRentable
	schemaConditionsReq = "smartrent.conditions.request.v1"
	schemaQuoteReq      = "smartrent.quote.request.v1"
	schemaBatchReq      = "smartrent.quote.batch.request.v1"
)

// Error is a request the service cannot answer with a result.
type Error struct {
	Code    int    `json:"code"` // 400, 404, 422, 503, 504
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Code, e.Reason, e.Message) }

// ConditionsRequest asks for one model's rental conditions.
type ConditionsRequest struct {
	Shop           string `json:"shop,omitempty"`
	ProductCode    string `json:"productCode,omitempty"`
	IdentifierType string `json:"identifierType"`
	Identifier     string `json:"identifier"`
}

// Request asks for a monthly payment.
type Request struct {
	Shop                  string         `json:"shop,omitempty"`
	ProductCode           string         `json:"productCode,omitempty"`
	Period                int            `json:"period"`
	InsuranceUsed         *bool          `json:"insuranceUsed,omitempty"`
	HeroDevice            Device         `json:"heroDevice"`
	AddOns                []events.AddOn `json:"addOns,omitempty"`
	GrossTradeInAmount    *float64       `json:"grossTradeInAmount,omitempty"`
	GrossCampaignDiscount *float64       `json:"grossCampaignDiscount,omitempty"`
}

// Device is the priced device. With IdentifierType and Identifier its
// rental conditions are checked before Inbank is asked for a calculation.
type Device struct {
	ModelID        string   `json:"modelId"`
	ModelName      string   `json:"modelName,omitempty"`
	NetPrice       float64  `json:"netPrice"`
	GrossPrice     *float64 `json:"grossPrice,omitempty"`
	IdentifierType string   `json:"identifierType,omitempty"`
	Identifier     string   `json:"identifier,omitempty"`
}

// BatchRequest asks for up to 50 quotes at once.
type BatchRequest struct {
	Shop   string            `json:"shop,omitempty"`
	Quotes []json.RawMessage `json:"quotes"`
}

// BatchResult is one quote of a batch, or why not.
type BatchResult struct {
	Quote *inbankapi.Calculation `json:"quote,omitempty"`
	Error *Error                 `json:"error,omitempty"`
}

// Shop is one more Inbank shop the service prices for, by alias.
type Shop struct {
	Inbank      inbank.API
	Conditions  *inbank.Conditions
	ProductCode string
}

// Config configures a [Service].
type Config struct {
	Inbank             inbank.API
	Conditions         *inbank.Conditions // shared with the workflow
	DefaultProductCode string
	Shops              map[string]Shop // further shops by alias
	CalculationTTL     time.Duration   // default 1 minute
	CacheLimit         int             // calculations kept; default 10,000
	Timeout            time.Duration   // one request, or a whole batch; default 5 s
	Concurrency        int             // requests answered at once; default 256
	Schemas            *schemas.Set
	Cache              *ttlcache.Metrics
	Registerer         prometheus.Registerer
	Logger             *slog.Logger
}

// Service answers the smartrent endpoints.
type Service struct {
	cfg      Config
	shops    map[string]Shop // "" is the default shop
	calcs    *ttlcache.Cache[inbankapi.Calculation]
	sem      chan struct{}
	requests *prometheus.CounterVec
}

// New checks cfg and fills defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Inbank == nil || cfg.Conditions == nil || cfg.Schemas == nil {
		return nil, errors.New("quote: inbank, conditions and schemas are required")
	}
	if cfg.CalculationTTL <= 0 {
		cfg.CalculationTTL = time.Minute
	}
	if cfg.CacheLimit <= 0 {
		cfg.CacheLimit = 10000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:   cfg,
		shops: map[string]Shop{"": {Inbank: cfg.Inbank, Conditions: cfg.Conditions, ProductCode: cfg.DefaultProductCode}},
		calcs: ttlcache.New[inbankapi.Calculation]("calculations", cfg.CalculationTTL, cfg.CacheLimit, 30*time.Second, cfg.Cache),
		sem:   make(chan struct{}, cfg.Concurrency),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_quote_requests_total",
			Help: "Requests to the smartrent service by endpoint and code (200, 400, 404, 422, 503, 504).",
		}, []string{"endpoint", "code"}),
	}
	for alias, sh := range cfg.Shops {
		if sh.Conditions == nil {
			sh.Conditions = inbank.NewConditions(sh.Inbank, nil)
		}
		s.shops[ids.ShopAlias(alias)] = sh
	}
	for _, ep := range []string{"conditions", "quote", "quote_batch"} {
		s.requests.WithLabelValues(ep, "200")
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.requests); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) shop(alias string) (Shop, *Error) {
	sh, ok := s.shops[ids.ShopAlias(alias)]
	if !ok {
		return sh, &Error{Code: 400, Reason: reasonInvalidInput, Message: fmt.Sprintf("shop %q is not configured", alias)}
	}
	return sh, nil
}

func (s *Service) checkShop(alias string) *Error {
	_, e := s.shop(alias)
	return e
}

func product(sh Shop, code string) string {
	if code == "" {
		return sh.ProductCode
	}
	return code
}

// Conditions returns one model's rental conditions.
func (s *Service) Conditions(ctx context.Context, req ConditionsRequest) (inbankapi.RentalConditions, *Error) {
	sh, e := s.shop(req.Shop)
	if e != nil {
		return inbankapi.RentalConditions{}, e
	}
	c, err := sh.Conditions.Get(ctx, product(sh, req.ProductCode), req.IdentifierType, req.Identifier)
	if err != nil {
		return c, s.inbankError(ctx, err, fmt.Sprintf("%s %s", req.IdentifierType, req.Identifier))
	}
	return c, nil
}

// Quote prices a request: the model's conditions are checked when the
// device is identified (the same rules and reasons as order.placed), then
// Inbank's calculation is returned, from the cache when an identical
// request was answered within the TTL.
func (s *Service) Quote(ctx context.Context, req Request) (inbankapi.Calculation, *Error) {
	sh, e := s.shop(req.Shop)
	if e != nil {
		return inbankapi.Calculation{}, e
	}
	product := product(sh, req.ProductCode)
	placed := &events.OrderPlaced{
		Period: req.Period, InsuranceUsed: req.InsuranceUsed, AddOns: req.AddOns,
		GrossTradeInAmount: req.GrossTradeInAmount, GrossCampaignDiscount: req.GrossCampaignDiscount,
		HeroDevice: events.HeroDevice{
			IdentifierType: req.HeroDevice.IdentifierType, Identifier: req.HeroDevice.Identifier,
			ModelID: req.HeroDevice.ModelID, ModelName: req.HeroDevice.ModelName,
			NetPrice: req.HeroDevice.NetPrice, GrossPrice: req.HeroDevice.GrossPrice,
		},
	}
	if r := order.CheckOrderFields(placed); r != nil {
		return inbankapi.Calculation{}, &Error{Code: 422, Reason: r.Reason, Message: r.Message}
	}
	insurance := true // Inbank's default when the model is not known here
	if req.InsuranceUsed != nil {
		insurance = *req.InsuranceUsed
	}
	if req.HeroDevice.Identifier != "" {
		cond, err := sh.Conditions.Get(ctx, product, req.HeroDevice.IdentifierType, req.HeroDevice.Identifier)
		if err != nil {
			return inbankapi.Calculation{}, s.inbankError(ctx, err, req.HeroDevice.Identifier)
		}
		var rej *order.Rejection
		if insurance, rej = order.Eligibility(placed, cond); rej != nil {
			return inbankapi.Calculation{}, &Error{Code: 422, Reason: rej.Reason, Message: rej.Message}
		}
	}
	calcReq := order.CalculationRequest(placed, insurance)
	key, _ := json.Marshal(struct {
		Shop, Product string
		Req           inbankapi.CalculationRequest
	}{ids.ShopAlias(req.Shop), product, calcReq})
	calc, _, err := s.calcs.Get(ctx, string(key), func(ctx context.Context) (inbankapi.Calculation, error) {
		return sh.Inbank.Calculate(ctx, product, calcReq)
	})
	if err != nil {
		return calc, s.inbankError(ctx, err, req.HeroDevice.ModelID)
	}
	return calc, nil
}

// inbankError maps an Inbank failure onto the service's codes.
func (s *Service) inbankError(ctx context.Context, err error, what string) *Error {
	var api *inbankapi.APIError
	var ve *inbankapi.ValidationError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: 504, Reason: ReasonDeadline, Message: "no answer from Inbank within the deadline"}
	case errors.As(err, &ve):
		return &Error{Code: 400, Reason: reasonInvalidInput, Message: ve.Field + ": " + ve.Reason}
	case errors.Is(err, inbankapi.ErrNotFound) || (errors.As(err, &api) && api.ErrorCode == "ASSET_MODEL_NOT_FOUND"):
		return &Error{Code: 404, Reason: reasonNotRentable, Message: what + " is not rentable"}
	case errors.Is(err, inbankapi.ErrRejected):
		return &Error{Code: 422, Reason: ReasonNotEligible, Message: api.Message}
	}
	s.cfg.Logger.Warn("quote: Inbank unavailable", "err", err)
	return &Error{Code: 503, Reason: ReasonUnavailable, Message: "Inbank is unavailable; try again later"}
}

// Batch answers up to 50 requests concurrently within one deadline;
// results are in request order.
func (s *Service) Batch(ctx context.Context, raw []json.RawMessage) ([]BatchResult, *Error) {
	if len(raw) == 0 || len(raw) > MaxBatch {
		return nil, &Error{Code: 400, Reason: reasonInvalidInput, Message: fmt.Sprintf("quotes: want 1 to %d requests, got %d", MaxBatch, len(raw))}
	}
	results := make([]BatchResult, len(raw))
	var wg sync.WaitGroup
	for i, r := range raw {
		wg.Go(func() {
			req, e := decode[Request](s.cfg.Schemas, schemaQuoteReq, r)
			if e != nil {
				results[i].Error = e
				return
			}
			done := make(chan struct{})
			var calc inbankapi.Calculation
			var qe *Error
			go func() { calc, qe = s.Quote(ctx, req); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				results[i].Error = &Error{Code: 504, Reason: ReasonDeadline, Message: "not answered within the batch deadline"}
				return
			}
			if qe != nil {
				results[i].Error = qe
				return
			}
			results[i].Quote = &calc
		})
	}
	wg.Wait()
	return results, nil
}

// decode validates a body against its schema and decodes it; a 400 names
// the field.
func decode[T any](set *schemas.Set, schema string, body []byte) (T, *Error) {
	var v T
	if err := set.Validate(schema, body); err != nil {
		var fe *schemas.FieldError
		msg := "body is not JSON"
		if errors.As(err, &fe) {
			msg = fmt.Sprintf("field %s: %s", fieldName(fe.Field), fe.Rule)
		}
		return v, &Error{Code: 400, Reason: reasonInvalidInput, Message: msg}
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, &Error{Code: 400, Reason: reasonInvalidInput, Message: err.Error()}
	}
	return v, nil
}

func fieldName(ptr string) string {
	if ptr == "" {
		return "/"
	}
	return ptr
}

// Register adds the service to nc as one member of the smartrent service
// group (every bridge runs one; requests are spread over them).
func (s *Service) Register(nc *nats.Conn, version string) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name: ServiceName, Version: version,
		Description: "Smart Rent conditions and quotes for product pages and carts",
	})
	if err != nil {
		return nil, fmt.Errorf("add service %s: %w", ServiceName, err)
	}
	endpoints := []struct {
		name, subject string
		h             func(ctx context.Context, body []byte) (any, *Error)
	}{
		{"conditions", SubjectConditions, func(ctx context.Context, body []byte) (any, *Error) {
			req, e := decode[ConditionsRequest](s.cfg.Schemas, schemaConditionsReq, body)
			if e != nil {
				return nil, e
			}
			return s.Conditions(ctx, req)
		}},
		{"quote", SubjectQuote, func(ctx context.Context, body []byte) (any, *Error) {
			req, e := decode[Request](s.cfg.Schemas, schemaQuoteReq, body)
			if e != nil {
				return nil, e
			}
			return s.Quote(ctx, req)
		}},
		{"quote_batch", SubjectQuoteBatch, func(ctx context.Context, body []byte) (any, *Error) {
			req, e := decode[BatchRequest](s.cfg.Schemas, schemaBatchReq, body)
			if e != nil {
				// A batch over 50 breaks the schema: say so plainly.
				var probe BatchRequest
				if json.Unmarshal(body, &probe) == nil && (len(probe.Quotes) == 0 || len(probe.Quotes) > MaxBatch) {
					_, e = s.Batch(ctx, probe.Quotes)
				}
				return nil, e
			}
			if e := s.checkShop(req.Shop); e != nil {
				return nil, e
			}
			results, e := s.Batch(ctx, req.Quotes)
			if e != nil {
				return nil, e
			}
			return map[string]any{"results": results}, nil
		}},
	}
	for _, ep := range endpoints {
		handler := s.handler(nc, ep.name, ep.h)
		if err := svc.AddEndpoint(ep.name, handler, micro.WithEndpointSubject(ep.subject)); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("endpoint %s: %w", ep.subject, err)
		}
	}
	return svc, nil
}

// handler answers each request in its own goroutine (micro calls an
// endpoint's handler serially), at most Concurrency at once.
//
// The answer is published on the connection to the request's reply
// subject, never through req: micro reads req's error state for its stats
// as soon as the handler returns, so a req answered from another goroutine
// is a data race. The headers are micro's own (Nats-Service-Error and
// Nats-Service-Error-Code), so clients see the same reply; micro's stats
// count the request but not its error (our smartrent_quote_requests_total
// has the code).
func (s *Service) handler(nc *nats.Conn, name string, h func(ctx context.Context, body []byte) (any, *Error)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		reply, body := req.Reply(), req.Data()
		s.sem <- struct{}{}
		go func() {
			defer func() { <-s.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			defer cancel()
			out, e := h(ctx, body)
			code := 200
			if e != nil {
				code = e.Code
			}
			s.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			if reply == "" {
				return // a publish, not a request: nobody waits for an answer
			}
			if err := nc.PublishMsg(answer(reply, out, e)); err != nil {
				s.cfg.Logger.Warn("quote: reply failed", "endpoint", name, "err", err)
			}
		}()
	})
}

// answer is the reply message micro's Respond or Error would have sent.
func answer(reply string, out any, e *Error) *nats.Msg {
	m := &nats.Msg{Subject: reply}
	if e == nil {
		b, err := json.Marshal(out)
		if err == nil {
			m.Data = b
			return m
		}
		e = &Error{Code: 500, Reason: "INTERNAL", Message: "the answer could not be encoded"}
	}
	m.Data, _ = json.Marshal(e)
	m.Header = nats.Header{
		micro.ErrorHeader:     []string{e.Message},
		micro.ErrorCodeHeader: []string{strconv.Itoa(e.Code)},
	}
	return m
}
