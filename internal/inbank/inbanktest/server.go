// Package inbanktest is a fake Inbank Smart Rent e-POS partner API v3 that
// behaves as shared/inbank-api documents it, for tests, the sandbox binary
// and the demo.
//
// What it models: the seven partner calls with Bearer authentication and the
// documented error bodies; a catalogue of rentable models (see
// [DefaultCatalogue]); the calculation (formula in calc.go); sessions with
// the lifecycle pending → granted/declined/cancelled/expired → completed,
// validUntil honoured; a contract created when a session is granted;
// identifiers checked against the model's identifier types; activation that
// needs identifiers and may take effect after [Config.ActivationDelay];
// callbacks to the session's callbackUrl on every status change.
//
// Where the documents are silent the fake chooses, and says so here:
//   - the conditions' "id" is the model id that calculations and sessions use;
//   - a contract's status is "granted" until activation, then "activated",
//     or "cancelled" when its session is cancelled;
//   - callback bodies are {"posSessionUuid": …, "status": …}, or only
//     {"uuid": …} with [CallbackPolicy.Minimal] (05: "lightweight triggers
//     with minimal information"); when signing is
//     on, X-Inbank-Timestamp (Unix seconds) and X-Inbank-Signature
//     (hex HMAC-SHA512 keyed with the API key over "<timestamp>.<body>");
//   - after an API activation takes effect the session becomes "completed";
//   - activating a contract that is activated, or whose activation is under
//     way, answers 422 CONTRACT_ALREADY_ACTIVATED; identifiers on an
//     activated contract answer 422;
//   - the decline rule of the demo environment applies to the total net
//     price at signing (1001–1100 declined).
//
// Not modelled: customer data checks beyond presence, locale and currency
// beyond the documented EUR, merchant data, integrationInfo, additionalData
// (stored, not used), and 403 (no resource has a per-key deny here).
package inbanktest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// Config configures a fake Inbank.
type Config struct {
	APIKey      string  // required Bearer token; default "test-api-key"
	ShopUUID    string  // default "a93f1f44-d5dd-4469-bfcc-c1de9e969213"
	ProductCode string  // product code the catalogue is under; default "smart_rent"
	Catalogue   []Model // default DefaultCatalogue(VATRate)
	VATRate     float64 // default 0.24
	// ActivationDelay makes activation asynchronous: the contract becomes
	// activated this long after the call.
	ActivationDelay time.Duration
	// PublicURL is the base of redirectUrl; set by NewServer.
	PublicURL string
	Callbacks CallbackPolicy
	Logger    *slog.Logger
}

// Defaults for [Config].
const (
	DefaultAPIKey      = "test-api-key"
	DefaultShopUUID    = "a93f1f44-d5dd-4469-bfcc-c1de9e969213"
	DefaultProductCode = "smart_rent"
)

type session struct {
	UUID            string
	Status          string
	Req             inbankapi.SessionRequest
	Model           Model
	Quote           inbankapi.Calculation
	ValidUntil      time.Time
	ApplicationUUID string
	ContractUUID    string
}

type contract struct {
	UUID        string
	SessionUUID string
	ProductCode string
	Model       Model
	Status      string
	Identifiers []inbankapi.AssetIdentifier
	Activating  bool
}

// Fake is the fake Inbank. Its methods are safe for concurrent use.
type Fake struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu        sync.Mutex
	sessions  map[string]*session
	contracts map[string]*contract
	faults    map[string]*Fault
	counts    counters
	cb        *dispatcher
	timers    map[*time.Timer]struct{}
	closed    bool
}

type counters struct {
	calls         map[string]int // by operation
	sessionsByRef map[string]int
	activations   map[string]int
	assignments   map[string]int
}

// New returns a fake Inbank with cfg's gaps filled by defaults. Call Close
// when done, to stop timers and callbacks in flight.
func New(cfg Config) *Fake {
	if cfg.APIKey == "" {
		cfg.APIKey = DefaultAPIKey
	}
	if cfg.ShopUUID == "" {
		cfg.ShopUUID = DefaultShopUUID
	}
	if cfg.ProductCode == "" {
		cfg.ProductCode = DefaultProductCode
	}
	if cfg.VATRate == 0 {
		cfg.VATRate = DefaultVATRate
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = DefaultCatalogue(cfg.VATRate)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fake{
		cfg: cfg, log: cfg.Logger,
		sessions:  map[string]*session{},
		contracts: map[string]*contract{},
		faults:    map[string]*Fault{},
		timers:    map[*time.Timer]struct{}{},
		counts: counters{
			calls: map[string]int{}, sessionsByRef: map[string]int{},
			activations: map[string]int{}, assignments: map[string]int{},
		},
	}
	f.cb = newDispatcher(cfg.APIKey, cfg.Callbacks, cfg.Logger)
	f.routes()
	return f
}

// NewServer starts the fake on an httptest server and closes both when the
// test ends.
func NewServer(t testing.TB, cfg Config) (*Fake, *httptest.Server) {
	t.Helper()
	// The fake exists before the server serves: a connection that reaches
	// the port at once (another test's client on a reused port) must not
	// find it half made.
	srv := httptest.NewUnstartedServer(nil)
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + srv.Listener.Addr().String()
	}
	f := New(cfg)
	srv.Config.Handler = f
	srv.Start()
	t.Cleanup(func() {
		f.Close()
		srv.Close()
	})
	return f, srv
}

// Config returns the configuration in force (defaults filled in).
func (f *Fake) Config() Config { return f.cfg }

// SetPublicURL sets the base of redirect URLs (for a server whose address
// is known only after it listens).
func (f *Fake) SetPublicURL(u string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg.PublicURL = strings.TrimRight(u, "/")
}

// Close stops activation timers and waits for callbacks in flight.
func (f *Fake) Close() {
	f.mu.Lock()
	f.closed = true
	for t := range f.timers {
		t.Stop()
	}
	f.mu.Unlock()
	f.cb.close()
}

// ServeHTTP serves the partner API, the customer pages and the control API.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Fake) routes() {
	m := http.NewServeMux()
	api := func(op, pattern string, h func(http.ResponseWriter, *http.Request) *apiErr) {
		m.Handle(pattern, f.partner(op, h))
	}
	api(inbank.OpGetRentalConditions, "GET /partner/v3/shops/{shop}/rental/products/{product}/detailed-asset-model", f.getConditions)
	api(inbank.OpCalculate, "POST /partner/v3/shops/{shop}/rental/products/{product}/calculations", f.postCalculation)
	api(inbank.OpCreateSession, "POST /partner/v3/shops/{shop}/pos-sessions", f.postSession)
	api(inbank.OpGetSession, "GET /partner/v3/shops/{shop}/pos-sessions/{session}", f.getSession)
	api(inbank.OpAssignAssetIdentifiers, "PATCH /partner/v3/shops/{shop}/rental/products/{product}/contracts/{contract}/asset-identifiers", f.patchIdentifiers)
	api(inbank.OpActivateContract, "POST /partner/v3/shops/{shop}/rental/products/{product}/contracts/{contract}/activation", f.postActivation)
	api(inbank.OpGetContract, "GET /partner/v3/shops/{shop}/contracts/{contract}", f.getContract)
	m.HandleFunc("/partner/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "not_found"})
	})
	f.controlRoutes(m)
	f.mux = m
}

// partner wraps a partner-API handler with authentication, the shop check,
// call counting and fault injection.
func (f *Fake) partner(op string, h func(http.ResponseWriter, *http.Request) *apiErr) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || auth != f.cfg.APIKey {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "unauthorized"})
			return
		}
		if r.PathValue("shop") != f.cfg.ShopUUID {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "not_found"})
			return
		}
		if p := r.PathValue("product"); p != "" && p != f.cfg.ProductCode {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "not_found"})
			return
		}
		f.mu.Lock()
		f.counts.calls[op]++
		fault := f.takeFault(op)
		f.mu.Unlock()
		if fault.Latency > 0 {
			select {
			case <-time.After(time.Duration(fault.Latency)):
			case <-r.Context().Done():
				return
			}
		}
		if fault.fails && !fault.AfterEffect {
			fault.respond(w, r)
			return
		}
		rec := httptest.NewRecorder()
		if e := h(rec, r); e != nil {
			body := map[string]string{"message": e.message}
			if e.errorCode != "" {
				body["errorCode"] = e.errorCode
			}
			writeJSON(w, e.status, body)
			return
		}
		if fault.fails { // the call took effect; the answer is lost
			fault.respond(w, r)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func (f *Fake) model(byType, id string) (Model, bool) {
	for _, m := range f.cfg.Catalogue {
		switch {
		case byType == inbankapi.ModelIdentifierEAN && m.EAN == id,
			byType == inbankapi.ModelIdentifierManufacturerProductCode && m.ManufacturerCode == id,
			byType == "modelId" && m.ID == id:
			return m, true
		}
	}
	return Model{}, false
}

func (f *Fake) getConditions(w http.ResponseWriter, r *http.Request) *apiErr {
	q := r.URL.Query()
	typ, id := q.Get("identifierType"), q.Get("identifier")
	if typ == "" || id == "" {
		return badRequest("identifierType and identifier are required")
	}
	if typ != inbankapi.ModelIdentifierEAN && typ != inbankapi.ModelIdentifierManufacturerProductCode {
		return badRequest("identifierType must be EAN or MANUFACTURER_PRODUCT_CODE")
	}
	m, ok := f.model(typ, id)
	if !ok {
		return &apiErr{status: http.StatusNotFound, message: "not_found"}
	}
	writeJSON(w, http.StatusOK, m.Conditions())
	return nil
}

func decode(r *http.Request, v any) *apiErr {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: " + err.Error())
	}
	return nil
}

func (f *Fake) postCalculation(w http.ResponseWriter, r *http.Request) *apiErr {
	var req inbankapi.CalculationRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	m, e := f.heroModel(req.Assets)
	if e != nil {
		return e
	}
	calc, e := calculate(m, req, f.cfg.VATRate)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, calc)
	return nil
}

func (f *Fake) heroModel(assets []inbankapi.CalculationAsset) (Model, *apiErr) {
	if len(assets) == 0 || assets[0].Type != inbankapi.AssetModelBased || assets[0].ModelID == "" {
		return Model{}, badRequest("the first asset must be the MODEL_BASED hero device with modelId")
	}
	m, ok := f.model("modelId", assets[0].ModelID)
	if !ok {
		return Model{}, rejected(CodeModelNotFound, "asset model not found")
	}
	return m, nil
}

func (f *Fake) postSession(w http.ResponseWriter, r *http.Request) *apiErr {
	var req inbankapi.SessionRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if err := req.Validate(); err != nil {
		return badRequest(err.Error())
	}
	if req.ProductCode != f.cfg.ProductCode {
		return rejected(CodeConstraints, "unknown product code")
	}
	rad := req.RentalApplicationData
	calcReq := inbankapi.CalculationRequest{
		Period: rad.Period, InsuranceUsed: rad.InsuranceUsed == nil || *rad.InsuranceUsed,
		GrossTradeInAmount: rad.GrossTradeInAmount, GrossCampaignDiscount: rad.GrossCampaignDiscount,
	}
	for i, a := range rad.Assets {
		typ := a.Type
		if typ == "" {
			typ = inbankapi.AssetCategoryBased
		}
		if i > 0 && a.CategoryCode == "" {
			return badRequest(fmt.Sprintf("rentalApplicationData.assets[%d].categoryCode is required", i))
		}
		calcReq.Assets = append(calcReq.Assets, inbankapi.CalculationAsset{Type: typ, ModelID: a.ModelID, CategoryCode: a.CategoryCode, NetPrice: a.NetPrice, ModelName: a.ModelName})
	}
	m, e := f.heroModel(calcReq.Assets)
	if e != nil {
		return e
	}
	quote, e := calculate(m, calcReq, f.cfg.VATRate)
	if e != nil {
		return e
	}
	var validUntil time.Time
	if req.ValidUntil != "" {
		t, err := time.Parse(time.RFC3339, req.ValidUntil)
		if err != nil {
			return badRequest("validUntil must be an ISO 8601 date-time")
		}
		validUntil = t
	}
	s := &session{UUID: newUUID(), Status: inbankapi.SessionPending, Req: req, Model: m, Quote: quote, ValidUntil: validUntil}
	f.mu.Lock()
	f.sessions[s.UUID] = s
	f.counts.sessionsByRef[req.Purchase.PurchaseReference]++
	base := f.cfg.PublicURL
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, inbankapi.CreatedSession{UUID: s.UUID, Status: s.Status, RedirectURL: base + "/session/" + s.UUID})
	return nil
}

func (f *Fake) getSession(w http.ResponseWriter, r *http.Request) *apiErr {
	f.mu.Lock()
	s, ok := f.sessions[r.PathValue("session")]
	var out inbankapi.Session
	if ok {
		f.expireIfDue(s)
		out = inbankapi.Session{UUID: s.UUID, Status: s.Status, CreditApplicationUUID: s.ApplicationUUID, CreditContractUUID: s.ContractUUID}
	}
	f.mu.Unlock()
	if !ok {
		return &apiErr{status: http.StatusNotFound, message: "not_found"}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (f *Fake) patchIdentifiers(w http.ResponseWriter, r *http.Request) *apiErr {
	var req inbankapi.AssetIdentifiersRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if err := req.Validate(); err != nil {
		return badRequest(err.Error())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contracts[r.PathValue("contract")]
	if !ok {
		return &apiErr{status: http.StatusNotFound, message: "not_found"}
	}
	f.counts.assignments[c.UUID]++
	if e := checkIdentifiers(c.Model, req.AssetIdentifiers); e != nil {
		return e
	}
	if c.Status != contractGranted || c.Activating {
		return rejected(CodeConstraints, "identifiers can only be assigned to a granted contract before activation")
	}
	c.Identifiers = append([]inbankapi.AssetIdentifier(nil), req.AssetIdentifiers...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func checkIdentifiers(m Model, ids []inbankapi.AssetIdentifier) *apiErr {
	for _, id := range ids {
		if !m.Conditions().AcceptsIdentifierType(id.IdentifierType) {
			return rejected(CodeConstraints, fmt.Sprintf("identifier type %s is not accepted for the model", id.IdentifierType))
		}
		if id.IdentifierType == inbankapi.AssetIdentifierIMEI && !allDigits(id.Identifier, 15) {
			return rejected(CodeConstraints, "IMEI must have 15 digits")
		}
	}
	return nil
}

func allDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

const (
	contractGranted   = "granted"
	contractCancelled = "cancelled"
)

func (f *Fake) postActivation(w http.ResponseWriter, r *http.Request) *apiErr {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contracts[r.PathValue("contract")]
	if !ok {
		return &apiErr{status: http.StatusNotFound, message: "not_found"}
	}
	f.counts.activations[c.UUID]++
	switch {
	case c.Status == inbankapi.ContractActivated || c.Activating:
		return rejected("CONTRACT_ALREADY_ACTIVATED", "contract is already activated")
	case c.Status != contractGranted:
		return rejected(CodeConstraints, "contract is "+c.Status)
	case len(c.Identifiers) == 0:
		return rejected(CodeConstraints, "asset identifiers must be assigned before activation")
	}
	if d := f.cfg.ActivationDelay; d > 0 {
		c.Activating = true
		var t *time.Timer
		t = time.AfterFunc(d, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.timers, t)
			if !f.closed {
				f.activate(c)
			}
		})
		f.timers[t] = struct{}{}
	} else {
		f.activate(c)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// activate makes c activated and its session completed. f.mu is held.
func (f *Fake) activate(c *contract) {
	c.Status, c.Activating = inbankapi.ContractActivated, false
	if s := f.sessions[c.SessionUUID]; s != nil && s.Status == inbankapi.SessionGranted {
		f.setStatus(s, inbankapi.SessionCompleted)
	}
}

func (f *Fake) getContract(w http.ResponseWriter, r *http.Request) *apiErr {
	f.mu.Lock()
	c, ok := f.contracts[r.PathValue("contract")]
	var out inbankapi.Contract
	if ok {
		out = inbankapi.Contract{UUID: c.UUID, Status: c.Status}
	}
	f.mu.Unlock()
	if !ok {
		return &apiErr{status: http.StatusNotFound, message: "not_found"}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// setStatus moves s and notifies its callback URL. f.mu is held.
func (f *Fake) setStatus(s *session, status string) {
	s.Status = status
	f.log.Info("inbanktest: session status", "session", s.UUID, "status", status)
	if s.Req.PartnerURLs != nil && s.Req.PartnerURLs.CallbackURL != "" {
		f.cb.send(s.Req.PartnerURLs.CallbackURL, s.UUID, status)
	}
}

// expireIfDue expires a pending session past its validUntil. f.mu is held.
func (f *Fake) expireIfDue(s *session) {
	if s.Status == inbankapi.SessionPending && !s.ValidUntil.IsZero() && time.Now().After(s.ValidUntil) {
		f.setStatus(s, inbankapi.SessionExpired)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newUUID() string { return uuid.NewString() }
