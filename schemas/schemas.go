// Package schemas holds the public contract of the bridge's events: one
// JSON Schema (draft 2020-12) per CloudEvent type, and asyncapi.yaml. The
// files are embedded, so every binary validates against exactly the
// documents in this folder.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"github.com/valyala/fastjson"
)

//go:embed *.json asyncapi.yaml
var FS embed.FS

// IDPrefix starts every schema's $id; the rest is the event type.
const IDPrefix = "urn:smartrent:schema:"

// ID returns the $id (and the CloudEvent dataschema) of an event type.
func ID(eventType string) string { return IDPrefix + eventType }

// Set is the compiled schemas, ready to validate. It is safe for concurrent
// use and meant to be built once per process.
type Set struct {
	byType map[string]*jsonschema.Schema
	// parsers are reused: a fastjson.Parser keeps its value tree between
	// parses, so decoding an event's data allocates little beyond the
	// instance handed to the validator (see instance).
	parsers fastjson.ParserPool
}

// Load compiles every schema in [FS].
func Load() (*Set, error) {
	files, err := fs.Glob(FS, "*.json")
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	types := make([]string, 0, len(files))
	for _, f := range files {
		raw, err := FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", f, err)
		}
		typ := strings.TrimSuffix(f, ".json")
		m, _ := doc.(map[string]any)
		if id, _ := m["$id"].(string); id != ID(typ) {
			return nil, fmt.Errorf("schema %s: $id is %q, want %q", f, id, ID(typ))
		}
		if err := c.AddResource(ID(typ), doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", f, err)
		}
		types = append(types, typ)
	}
	s := &Set{byType: make(map[string]*jsonschema.Schema, len(types))}
	for _, typ := range types {
		sch, err := c.Compile(ID(typ))
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", typ, err)
		}
		s.byType[typ] = sch
	}
	return s, nil
}

// MustLoad is Load for package-level test helpers and main; it panics on an
// invalid embedded schema, which the tests of this package rule out.
func MustLoad() *Set {
	s, err := Load()
	if err != nil {
		panic(err)
	}
	return s
}

// Types lists the event types that have a schema, sorted.
func (s *Set) Types() []string {
	out := make([]string, 0, len(s.byType))
	for t := range s.byType {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ServiceBodies are the request and reply bodies of the smartrent service
// (NATS micro request-reply), which are not events.
var ServiceBodies = []string{
	"smartrent.conditions.reply.v1",
	"smartrent.conditions.request.v1",
	"smartrent.quote.batch.reply.v1",
	"smartrent.quote.batch.request.v1",
	"smartrent.quote.reply.v1",
	"smartrent.quote.request.v1",
	"smartrent.service.error.v1",
}

// EventTypes lists the schemas that are event types, sorted.
func (s *Set) EventTypes() []string {
	var out []string
	for _, t := range s.Types() {
		if !slices.Contains(ServiceBodies, t) {
			out = append(out, t)
		}
	}
	return out
}

// Has reports whether eventType has a schema.
func (s *Set) Has(eventType string) bool { _, ok := s.byType[eventType]; return ok }

// ErrUnknownType is returned for an event type without a schema.
var ErrUnknownType = errors.New("unknown event type")

// FieldError says which field of an event's data breaks its schema. It
// names the field and the rule, never the value: values can be personal
// data.
type FieldError struct {
	Type  string // event type
	Field string // JSON pointer, e.g. /heroDevice/netPrice; "" for the whole object
	Rule  string // what is wrong, e.g. "required", "minimum", "format email"
}

func (e *FieldError) Error() string {
	f := e.Field
	if f == "" {
		f = "/"
	}
	return fmt.Sprintf("%s data: field %s: %s", e.Type, f, e.Rule)
}

// Validate checks JSON data against the schema of eventType. It returns
// [ErrUnknownType] (wrapped) for a type without a schema, a *[FieldError]
// for data that breaks the schema, or another error for data that is not
// JSON.
func (s *Set) Validate(eventType string, data []byte) error {
	return s.validate(eventType, data, s.instance)
}

// ValidateWellFormed is Validate for data known to be well-formed JSON:
// data that went through encoding/json already (part of a body that
// json.Unmarshal accepted, or json.Marshal's output). It skips a second
// syntax check; on data that is not well-formed its result is undefined.
func (s *Set) ValidateWellFormed(eventType string, data []byte) error {
	return s.validate(eventType, data, s.wellFormedInstance)
}

func (s *Set) validate(eventType string, data []byte, decode func([]byte) (any, error)) error {
	sch, ok := s.byType[eventType]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, eventType)
	}
	v, err := decode(data)
	if err != nil {
		return fmt.Errorf("%s data: not JSON: %w", eventType, err)
	}
	return s.validateValue(eventType, sch, v)
}

// ValidateValue checks an already decoded JSON value (numbers as
// json.Number or float64).
func (s *Set) ValidateValue(eventType string, v any) error {
	sch, ok := s.byType[eventType]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, eventType)
	}
	return s.validateValue(eventType, sch, v)
}

func (s *Set) validateValue(eventType string, sch *jsonschema.Schema, v any) error {
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%s data: %w", eventType, err)
	}
	// The validator's causes come in no fixed order: report the first
	// most specific error by field and rule, so the same data always gets
	// the same message.
	var all []*FieldError
	for _, leaf := range leaves(ve, nil) {
		all = append(all, &FieldError{Type: eventType, Field: pointer(leaf.InstanceLocation), Rule: rule(leaf)})
	}
	slices.SortFunc(all, func(a, b *FieldError) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return all[0]
}

// leaves collects the most specific errors under e.
func leaves(e *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(out, e)
	}
	for _, c := range e.Causes {
		out = leaves(c, out)
	}
	return out
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return ""
	}
	return "/" + strings.Join(loc, "/")
}

// rule describes a failed keyword without quoting the value.
func rule(e *jsonschema.ValidationError) string {
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		return "missing required " + strings.Join(k.Missing, ", ")
	case *kind.DependentRequired:
		return fmt.Sprintf("%s requires %s", k.Prop, strings.Join(k.Missing, ", "))
	case *kind.Type:
		return fmt.Sprintf("must be %s, got %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.AdditionalProperties:
		return "unknown field " + strings.Join(k.Properties, ", ")
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return "must be one of " + strings.Join(want, ", ")
	case *kind.Format:
		return "must be a valid " + k.Want
	case *kind.Pattern:
		return "must match " + k.Want
	}
	return strings.Join(e.ErrorKind.KeywordPath(), "/") + " violated"
}
