package schemas

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/valyala/fastjson"
)

// instance decodes JSON data into the value the validator reads (objects
// as map[string]any, arrays as []any, numbers as json.Number), exactly as
// jsonschema.UnmarshalJSON does. Malformed data, and every error, go the
// library's way, so that errors read as they always did.
func (s *Set) instance(data []byte) (any, error) {
	if !json.Valid(data) {
		return jsonschema.UnmarshalJSON(bytes.NewReader(data))
	}
	return s.wellFormedInstance(data)
}

// wellFormedInstance is instance for data that encoding/json's scanner
// accepts (json.Valid), at a third of the library's cost: its decode (an
// encoding/json Decoder filling interfaces) was half the cost of
// validating an event, and every event the bridge reads or writes is
// validated. The bridge's data has always been through encoding/json
// already (an input's body was unmarshalled whole; an output's data was
// marshalled), so it skips json.Valid, itself a third of the decode.
//
// fastjson is laxer than encoding/json (it takes "nan", "1.2.3" or "+1"
// as numbers, keeps invalid UTF-8 and lone surrogates as they are), hence
// the precondition, and data that is not valid UTF-8 or has a \u escape
// goes the library's way too. TestInstanceIsWhatTheLibraryDecodes and
// FuzzInstance hold the two to the same result.
func (s *Set) wellFormedInstance(data []byte) (any, error) {
	if !utf8.Valid(data) || bytes.Contains(data, []byte(`\u`)) {
		return jsonschema.UnmarshalJSON(bytes.NewReader(data))
	}
	p := s.parsers.Get()
	defer s.parsers.Put(p)
	v, err := p.ParseBytes(data)
	if err != nil { // deeper than fastjson.MaxDepth
		return jsonschema.UnmarshalJSON(bytes.NewReader(data))
	}
	return toInstance(v), nil
}

// toInstance copies a fastjson value out of the parser's memory.
func toInstance(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) { m[string(k)] = toInstance(x) }) // a repeated key: the last wins, as in encoding/json
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, x := range a {
			out[i] = toInstance(x)
		}
		return out
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return string(s)
	case fastjson.TypeNumber:
		return json.Number(v.String()) // the number's text, as UseNumber keeps it
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}
