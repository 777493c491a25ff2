package inbanktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// ErrSessionNotFound and ErrWrongStatus are returned by the control methods.
var (
	ErrSessionNotFound = errors.New("inbanktest: session not found")
	ErrWrongStatus     = errors.New("inbanktest: session is not in a status that allows this")
)

// Sign acts as the customer completing the dialog: the session becomes
// granted (a contract is created) or, for totals of 1001–1100, declined.
// It returns the new status.
func (f *Fake) Sign(sessionUUID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionIn(sessionUUID, inbankapi.SessionPending)
	if err != nil {
		return "", err
	}
	if declinedByAmount(s.Quote.TotalNetPrice) {
		f.setStatus(s, inbankapi.SessionDeclined)
		return s.Status, nil
	}
	c := &contract{UUID: newUUID(), SessionUUID: s.UUID, ProductCode: s.Req.ProductCode, Model: s.Model, Status: contractGranted}
	f.contracts[c.UUID] = c
	s.ApplicationUUID, s.ContractUUID = newUUID(), c.UUID
	f.setStatus(s, inbankapi.SessionGranted)
	return s.Status, nil
}

// Decline acts as Inbank's decision: a pending session becomes declined.
func (f *Fake) Decline(sessionUUID string) error {
	return f.transition(sessionUUID, inbankapi.SessionDeclined, inbankapi.SessionPending)
}

// Cancel acts as the customer cancelling: a pending or granted session
// becomes cancelled, and its contract with it.
func (f *Fake) Cancel(sessionUUID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionIn(sessionUUID, inbankapi.SessionPending, inbankapi.SessionGranted)
	if err != nil {
		return err
	}
	if c := f.contracts[s.ContractUUID]; c != nil {
		if c.Activating {
			return fmt.Errorf("%w: activation under way", ErrWrongStatus)
		}
		c.Status = contractCancelled
	}
	f.setStatus(s, inbankapi.SessionCancelled)
	return nil
}

// Expire makes a pending session expired now, as if validUntil had passed.
func (f *Fake) Expire(sessionUUID string) error {
	return f.transition(sessionUUID, inbankapi.SessionExpired, inbankapi.SessionPending)
}

// PortalApprove acts as the partner in the Partner Portal (path B): the
// granted session's contract gets ids (or a generated identifier of the
// model's first type), is activated, and the session becomes completed.
func (f *Fake) PortalApprove(sessionUUID string, ids ...inbankapi.AssetIdentifier) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionIn(sessionUUID, inbankapi.SessionGranted)
	if err != nil {
		return err
	}
	c := f.contracts[s.ContractUUID]
	if len(ids) == 0 {
		ids = []inbankapi.AssetIdentifier{generatedIdentifier(s.Model)}
	}
	if e := checkIdentifiers(s.Model, ids); e != nil {
		return fmt.Errorf("inbanktest: %s", e.message)
	}
	c.Identifiers = ids
	f.activate(c)
	return nil
}

func generatedIdentifier(m Model) inbankapi.AssetIdentifier {
	if m.AssetIdentifierTypes[0] == inbankapi.AssetIdentifierIMEI {
		return inbankapi.AssetIdentifier{IdentifierType: inbankapi.AssetIdentifierIMEI, Identifier: "356938035643809"}
	}
	return inbankapi.AssetIdentifier{IdentifierType: m.AssetIdentifierTypes[0], Identifier: "SN" + strings.ToUpper(newUUID()[:8])}
}

func (f *Fake) transition(sessionUUID, to string, from ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionIn(sessionUUID, from...)
	if err != nil {
		return err
	}
	f.setStatus(s, to)
	return nil
}

// sessionIn finds a session in one of the given statuses. f.mu is held.
func (f *Fake) sessionIn(uuid string, statuses ...string) (*session, error) {
	s, ok := f.sessions[uuid]
	if !ok {
		return nil, ErrSessionNotFound
	}
	f.expireIfDue(s)
	if !slices.Contains(statuses, s.Status) {
		return nil, fmt.Errorf("%w: %s", ErrWrongStatus, s.Status)
	}
	return s, nil
}

// SessionInfo is what the control API tells about a session.
type SessionInfo struct {
	UUID              string                      `json:"uuid"`
	Status            string                      `json:"status"`
	PurchaseReference string                      `json:"purchaseReference"`
	ContractUUID      string                      `json:"contractUuid,omitempty"`
	ContractStatus    string                      `json:"contractStatus,omitempty"`
	Identifiers       []inbankapi.AssetIdentifier `json:"identifiers,omitempty"`
	CallbackURL       string                      `json:"callbackUrl,omitempty"`
	ValidUntil        string                      `json:"validUntil,omitempty"`
}

// Sessions lists the sessions created for purchaseReference ("" for all).
func (f *Fake) Sessions(purchaseReference string) []SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SessionInfo
	for _, s := range f.sessions {
		if purchaseReference != "" && s.Req.Purchase.PurchaseReference != purchaseReference {
			continue
		}
		f.expireIfDue(s)
		out = append(out, f.info(s))
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.UUID, b.UUID) })
	return out
}

func (f *Fake) info(s *session) SessionInfo {
	i := SessionInfo{UUID: s.UUID, Status: s.Status, PurchaseReference: s.Req.Purchase.PurchaseReference, ContractUUID: s.ContractUUID, ValidUntil: s.Req.ValidUntil}
	if s.Req.PartnerURLs != nil {
		i.CallbackURL = s.Req.PartnerURLs.CallbackURL
	}
	if c := f.contracts[s.ContractUUID]; c != nil {
		i.ContractStatus, i.Identifiers = c.Status, c.Identifiers
	}
	return i
}

// SessionsCreated counts sessions created with this purchaseReference.
func (f *Fake) SessionsCreated(purchaseReference string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts.sessionsByRef[purchaseReference]
}

// Activations counts activation calls received for a contract.
func (f *Fake) Activations(contractUUID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts.activations[contractUUID]
}

// IdentifierAssignments counts identifier assignments received for a contract.
func (f *Fake) IdentifierAssignments(contractUUID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts.assignments[contractUUID]
}

// Calls counts authenticated calls of an operation, faults included.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts.calls[op]
}

// Counters is a snapshot of every counter, as the control API serves it.
type Counters struct {
	Calls                 map[string]int `json:"calls"`
	SessionsCreated       map[string]int `json:"sessionsCreated"`
	Activations           map[string]int `json:"activations"`
	IdentifierAssignments map[string]int `json:"identifierAssignments"`
	Callbacks             CallbackStats  `json:"callbacks"`
}

// Snapshot returns every counter.
func (f *Fake) Snapshot() Counters {
	cb := f.CallbackStats()
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return Counters{
		Calls: cp(f.counts.calls), SessionsCreated: cp(f.counts.sessionsByRef),
		Activations: cp(f.counts.activations), IdentifierAssignments: cp(f.counts.assignments),
		Callbacks: cb,
	}
}

// controlRoutes serves the customer page and the sandbox control API:
//
//	GET  /session/{uuid}                   the e-POS page a customer is redirected to
//	POST /session/{uuid}/{sign|decline|cancel}   its buttons; redirect to returnUrl or cancelUrl
//	GET  /sandbox/sessions?purchaseReference=…   sessions as JSON
//	POST /sandbox/sessions/{uuid}/{sign|decline|cancel|expire|portal-approve}
//	GET  /sandbox/counters                 [Counters]
//	PUT  /sandbox/faults/{operation}       a [Fault] as JSON; DELETE /sandbox/faults clears them
//	PUT  /sandbox/callbacks                a [CallbackPolicy] as JSON
func (f *Fake) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /session/{session}", f.page)
	m.HandleFunc("POST /session/{session}/{action}", f.pageAction)
	m.HandleFunc("GET /sandbox/sessions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.Sessions(r.URL.Query().Get("purchaseReference")))
	})
	m.HandleFunc("POST /sandbox/sessions/{session}/{action}", func(w http.ResponseWriter, r *http.Request) {
		uuid, action := r.PathValue("session"), r.PathValue("action")
		var ids []inbankapi.AssetIdentifier
		if action == "portal-approve" && r.ContentLength > 0 {
			if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"message": "body must be a JSON array of asset identifiers"})
				return
			}
		}
		err := f.act(uuid, action, ids)
		if errors.Is(err, errUnknownAction) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "unknown action"})
			return
		}
		f.controlAnswer(w, uuid, err)
	})
	m.HandleFunc("GET /sandbox/counters", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f.Snapshot()) })
	m.HandleFunc("PUT /sandbox/faults/{op}", func(w http.ResponseWriter, r *http.Request) {
		var ft Fault
		if err := json.NewDecoder(r.Body).Decode(&ft); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
			return
		}
		f.SetFault(r.PathValue("op"), ft)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("DELETE /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		f.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("PUT /sandbox/callbacks", func(w http.ResponseWriter, r *http.Request) {
		var p CallbackPolicy
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
			return
		}
		f.SetCallbackPolicy(p)
		w.WriteHeader(http.StatusNoContent)
	})
}

func (f *Fake) controlAnswer(w http.ResponseWriter, uuid string, err error) {
	switch {
	case errors.Is(err, ErrSessionNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"message": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusConflict, map[string]string{"message": err.Error()})
	default:
		f.mu.Lock()
		info := f.info(f.sessions[uuid])
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, info)
	}
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inbank Smart Rent (sandbox)</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}button{font-size:1.1em;margin:.5em .5em 0 0;padding:.4em 1.2em}</style></head>
<body><h1>Inbank Smart Rent <small>(sandbox)</small></h1>
<p id="description">{{.Description}}</p>
<p>Order <b id="reference">{{.Reference}}</b> — session status <b id="status">{{.Status}}</b></p>
<table id="assets"><tr><th>Item</th><th>Net price</th></tr>{{range .Assets}}<tr><td>{{.ModelName}}</td><td>{{printf "%.2f" .NetPrice}} EUR</td></tr>{{end}}</table>
<p id="quote">{{.Quote.Period}} months × <b id="monthly">{{printf "%.2f" .Quote.GrossMonthlyPayment}} EUR</b> a month (VAT included)</p>
{{if .Pending}}<form method="post" action="/session/{{.UUID}}/sign"><button id="sign" type="submit">Sign the rental agreement</button></form>
<form method="post" action="/session/{{.UUID}}/decline"><button id="decline" type="submit">Decline (as Inbank's decision)</button></form>
<form method="post" action="/session/{{.UUID}}/cancel"><button id="cancel" type="submit">Cancel and return to the shop</button></form>{{end}}
</body></html>`))

func (f *Fake) page(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s, ok := f.sessions[r.PathValue("session")]
	var data map[string]any
	if ok {
		f.expireIfDue(s)
		data = map[string]any{
			"UUID": s.UUID, "Status": s.Status, "Description": s.Req.Purchase.Description,
			"Reference": s.Req.Purchase.PurchaseReference, "Assets": s.Req.RentalApplicationData.Assets,
			"Quote": s.Quote, "Pending": s.Status == inbankapi.SessionPending,
		}
	}
	f.mu.Unlock()
	if !ok {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, data)
}

var errUnknownAction = errors.New("unknown action")

// act performs a customer's or the partner portal's action on a session.
func (f *Fake) act(uuid, action string, ids []inbankapi.AssetIdentifier) error {
	switch action {
	case "sign":
		_, err := f.Sign(uuid)
		return err
	case "decline":
		return f.Decline(uuid)
	case "cancel":
		return f.Cancel(uuid)
	case "expire":
		return f.Expire(uuid)
	case "portal-approve":
		return f.PortalApprove(uuid, ids...)
	}
	return errUnknownAction
}

func (f *Fake) pageAction(w http.ResponseWriter, r *http.Request) {
	uuid, action := r.PathValue("session"), r.PathValue("action")
	if action != "sign" && action != "decline" && action != "cancel" {
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	err := f.act(uuid, action, nil)
	if errors.Is(err, ErrSessionNotFound) {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	f.mu.Lock()
	urls := f.sessions[uuid].Req.PartnerURLs
	f.mu.Unlock()
	target := "/session/" + uuid
	if urls != nil {
		target = urls.ReturnURL
		if r.PathValue("action") == "cancel" {
			target = urls.CancelURL
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
