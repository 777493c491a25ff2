// Package events is the public event contract (docs/contract.md) in Go:
// the CloudEvent types and their data, subjects, and encoding and
// decoding in structured and binary mode with schema validation. It
// knows no transport and nothing of Inbank: package streams carries
// these events over JetStream, package orderstore keeps the order state.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/schemas"
)

// Headers and content types of the contract.
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeJSON       = "application/json"
	HeaderContentType     = "Content-Type"
	binaryPrefix          = "ce-"
	// ExtensionTraceParent carries W3C trace context from event to event.
	ExtensionTraceParent = "traceparent"
)

// Modes a message can be encoded in.
const (
	ModeStructured = "structured"
	ModeBinary     = "binary"
)

// ErrBinaryData is returned by [Codec.Encode] for an event whose JSON data
// would be written as data_base64 (data set as []byte; use
// json.RawMessage).
var ErrBinaryData = errors.New("JSON data would be written as data_base64; set it as json.RawMessage or a value")

// DecodeError kinds.
const (
	KindMalformed    = "malformed"     // not JSON, or not a CloudEvent
	KindUnknownType  = "unknown_type"  // a CloudEvent of a type the contract lacks
	KindInvalidData  = "invalid_data"  // data breaks its schema
	KindWrongSubject = "wrong_subject" // subject is not data.orderId
)

// DecodeError is a message that cannot be handled: it goes to the dead
// letters, never crashes a consumer. OrderID is set when the data names an
// order, so that order can be told (order.rejected INVALID_ORDER).
type DecodeError struct {
	Kind    string
	Type    string
	OrderID string // only an id within the limit of package ids, else ""
	Shop    string // the shop alias the data names, when valid
	Err     error
}

func (e *DecodeError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("decode %s event: %s: %v", e.Type, e.Kind, e.Err)
	}
	return fmt.Sprintf("decode event: %s: %v", e.Kind, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Envelope is a decoded, validated event and its typed data (a pointer to
// the type [TypeOf] names).
type Envelope struct {
	Event event.Event
	Data  any
	Mode  string
}

// OrderID is the order the event is about.
func (e Envelope) OrderID() string { return e.Event.Subject() }

// Codec encodes and decodes contract events, validating data against the
// schemas. It is safe for concurrent use.
type Codec struct {
	schemas *schemas.Set
	now     func() time.Time
}

// NewCodec returns a codec over the given schemas.
func NewCodec(s *schemas.Set) *Codec { return &Codec{schemas: s, now: time.Now} }

// New builds an event of eventType about orderID from data: a fresh id,
// source, time now, dataschema and JSON data. It validates nothing; Encode
// does.
func (c *Codec) New(source, eventType, orderID string, data any) (event.Event, error) {
	return c.NewWithID(NewID(), source, eventType, orderID, data)
}

// NewWithID is New with the event's id given: an event whose id is fixed
// by what it reports, so that publishing it twice stores it once.
func (c *Codec) NewWithID(id, source, eventType, orderID string, data any) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource(source)
	e.SetType(eventType)
	e.SetSubject(orderID)
	e.SetTime(c.now().UTC())
	e.SetDataSchema(schemas.ID(eventType))
	if err := e.SetData(ContentTypeJSON, data); err != nil {
		return e, fmt.Errorf("encode %s data: %w", eventType, err)
	}
	return e, nil
}

// Encode checks e against the contract (required attributes, known type,
// dataschema, data valid against its schema) and returns the structured-mode
// body.
func (c *Codec) Encode(e event.Event) ([]byte, error) { return c.encode(e, true) }

// EncodeUnvalidated is Encode without validating the data against its
// schema: the attributes are still checked. It is for a producer that
// chose to trust its own data (the bridge's VALIDATE_OUTGOING=false).
func (c *Codec) EncodeUnvalidated(e event.Event) ([]byte, error) { return c.encode(e, false) }

func (c *Codec) encode(e event.Event, validateData bool) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	if _, ok := SubjectOf(e.Type()); !ok {
		return nil, fmt.Errorf("encode event: %w: %q", schemas.ErrUnknownType, e.Type())
	}
	if e.Subject() == "" || e.Time().IsZero() {
		return nil, fmt.Errorf("encode %s event: subject (order id) and time are required", e.Type())
	}
	// The contract (and the CloudEvents JSON format) puts JSON data in
	// "data" as a JSON value; sdk-go writes "data_base64" for data set as
	// []byte, which a consumer in another language does not read as data.
	if e.DataBase64 {
		return nil, fmt.Errorf("encode %s event: %w", e.Type(), ErrBinaryData)
	}
	if got, want := e.DataSchema(), schemas.ID(e.Type()); got != want {
		return nil, fmt.Errorf("encode %s event: dataschema is %q, want %q", e.Type(), got, want)
	}
	if validateData {
		if err := c.schemas.Validate(e.Type(), e.Data()); err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
	}
	// The event's own MarshalJSON, not json.Marshal: that would scan and
	// compact its output once more (3 % of the bridge's CPU at load).
	b, err := e.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type(), err)
	}
	return b, nil
}

// Decode reads a message in structured mode (Content-Type
// application/cloudevents+json, or a JSON body with specversion) or binary
// mode (ce-* headers, matched case-insensitively). The result is valid
// against the contract, or the error is a *[DecodeError].
func (c *Codec) Decode(h map[string][]string, body []byte) (Envelope, error) {
	var env Envelope
	var err error
	if hasBinaryHeaders(h) {
		env.Mode = ModeBinary
		env.Event, err = decodeBinary(h, body)
	} else {
		env.Mode = ModeStructured
		// json.Unmarshal, not the event's own UnmarshalJSON: that one
		// accepts a body with anything after the event.
		err = json.Unmarshal(body, &env.Event)
		if err == nil {
			err = env.Event.Validate()
		}
	}
	if err != nil {
		n := probeData(body)
		return env, &DecodeError{Kind: KindMalformed, OrderID: n.orderID(), Shop: n.shop(), Err: err}
	}
	e := &env.Event
	names := probeData(e.Data()) // once: data is parsed again only to validate and decode it
	orderID, shop := names.orderID(), names.shop()
	if ct := e.DataContentType(); ct != "" && !strings.HasPrefix(ct, ContentTypeJSON) {
		return env, &DecodeError{Kind: KindMalformed, Type: e.Type(), OrderID: orderID, Shop: shop, Err: fmt.Errorf("datacontenttype %q is not JSON", ct)}
	}
	target := TypeOf(e.Type())
	if target == nil || !c.schemas.Has(e.Type()) {
		return env, &DecodeError{Kind: KindUnknownType, Type: e.Type(), OrderID: orderID, Shop: shop, Err: fmt.Errorf("%w: %q", schemas.ErrUnknownType, e.Type())}
	}
	if ds := e.DataSchema(); ds != "" && ds != schemas.ID(e.Type()) {
		return env, &DecodeError{Kind: KindInvalidData, Type: e.Type(), OrderID: orderID, Shop: shop, Err: fmt.Errorf("dataschema %q does not match the type", ds)}
	}
	validate := c.schemas.Validate
	if env.Mode == ModeStructured && !e.DataBase64 {
		// The data is part of the body json.Unmarshal accepted above,
		// verbatim: well-formed, so not scanned once more.
		validate = c.schemas.ValidateWellFormed
	}
	if err := validate(e.Type(), e.Data()); err != nil {
		return env, &DecodeError{Kind: KindInvalidData, Type: e.Type(), OrderID: orderID, Shop: shop, Err: err}
	}
	if err := ids.CheckOrderID(names.OrderID); err != nil {
		// The schemas say the same; this guards the keys and subjects
		// should a schema ever be looser.
		return env, &DecodeError{Kind: KindInvalidData, Type: e.Type(), Err: err}
	}
	if e.Subject() == "" {
		e.SetSubject(orderID)
	} else if e.Subject() != orderID {
		return env, &DecodeError{Kind: KindWrongSubject, Type: e.Type(), OrderID: orderID, Shop: shop, Err: errors.New("subject must be the order id of the data")}
	}
	if err := json.Unmarshal(e.Data(), target); err != nil {
		return env, &DecodeError{Kind: KindInvalidData, Type: e.Type(), OrderID: orderID, Shop: shop, Err: err}
	}
	env.Data = target
	return env, nil
}

func hasBinaryHeaders(h map[string][]string) bool {
	for k := range h {
		if strings.EqualFold(k, binaryPrefix+"specversion") {
			return true
		}
	}
	return false
}

func decodeBinary(h map[string][]string, body []byte) (event.Event, error) {
	attrs := map[string]string{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, binaryPrefix); ok && len(v) > 0 {
			attrs[name] = v[0]
		}
	}
	// event.New leaves the context nil for a version it does not know, and
	// every setter would then panic (found by FuzzDecode).
	if v := attrs["specversion"]; v != event.CloudEventsVersionV1 && v != event.CloudEventsVersionV03 {
		return event.Event{}, fmt.Errorf("binary mode: specversion %q is not 1.0 or 0.3", v)
	}
	e := event.New(attrs["specversion"])
	for name, v := range attrs {
		var err error
		switch name {
		case "specversion", "datacontenttype": // the content type is read below
		case "id":
			e.SetID(v)
		case "source":
			e.SetSource(v)
		case "type":
			e.SetType(v)
		case "subject":
			e.SetSubject(v)
		case "dataschema":
			e.SetDataSchema(v)
		case "time":
			var t time.Time
			t, err = time.Parse(time.RFC3339Nano, v)
			e.SetTime(t)
		default:
			e.SetExtension(name, v)
		}
		if err != nil {
			return e, fmt.Errorf("binary attribute %s: %w", name, err)
		}
	}
	ct := headerGet(h, HeaderContentType)
	if ct == "" {
		ct = attrs["datacontenttype"]
	}
	if ct == "" {
		ct = ContentTypeJSON
	}
	if err := e.SetData(ct, body); err != nil {
		return e, err
	}
	return e, e.Validate()
}

// headerGet reads a header case-insensitively (NATS headers are not canonical).
func headerGet(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// dataNames are the fields that name an order, as read (see probeData).
type dataNames struct {
	OrderID string `json:"orderId"`
	Shop    string `json:"shop"`
}

// orderID is data.orderId if it is within the limit: an id outside it is
// not an order the bridge can name, "" then.
func (n dataNames) orderID() string {
	if ids.CheckOrderID(n.OrderID) != nil {
		return ""
	}
	return n.OrderID
}

// shop is data.shop; "" for none or an invalid alias.
func (n dataNames) shop() string {
	if ids.CheckShopAlias(n.Shop) != nil {
		return ""
	}
	return n.Shop
}

// probeData reads the names from data itself, or from the "data" of a
// structured event, trusting nothing else in it.
func probeData(raw []byte) dataNames {
	var probe struct {
		dataNames
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(bytes.TrimSpace(raw), &probe) != nil {
		return dataNames{}
	}
	if probe.OrderID == "" && len(probe.Data) > 0 {
		var d dataNames
		if json.Unmarshal(probe.Data, &d) == nil {
			return d
		}
	}
	return probe.dataNames
}

// TraceParent returns the event's traceparent extension, if any.
func TraceParent(e event.Event) string {
	v, _ := e.Extensions()[ExtensionTraceParent].(string)
	return v
}

// NewID returns a random UUID v4 for an event id.
func NewID() string { return uuid.NewString() }
