package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var schemaSet = schemas.MustLoad()

// TestEveryTypeHasSchemaAndAsyncAPIMessage keeps Go, schemas/ and
// asyncapi.yaml in step, in both directions.
func TestEveryTypeHasSchemaAndAsyncAPIMessage(t *testing.T) {
	if got, want := schemaSet.EventTypes(), events.Types(); !slices.Equal(got, want) {
		t.Fatalf("schemas %v, Go types %v", got, want)
	}
	doc := loadAsyncAPI(t)
	var inDoc []string
	for _, m := range doc.Components.Messages {
		inDoc = append(inDoc, m.Name)
	}
	slices.Sort(inDoc)
	if want := schemaSet.Types(); !slices.Equal(inDoc, want) {
		t.Fatalf("asyncapi messages %v, schemas %v", inDoc, want)
	}
	for name, ch := range doc.Channels {
		for _, ref := range ch.Messages {
			msg := doc.Components.Messages[strings.TrimPrefix(ref.Ref, "#/components/messages/")]
			if slices.Contains(schemas.ServiceBodies, msg.Name) {
				if !strings.HasPrefix(ch.Address, "smartrent.") || strings.HasPrefix(ch.Address, "smartrent.in.") || strings.HasPrefix(ch.Address, "smartrent.out.") {
					t.Errorf("channel %s: service message %s on %s", name, msg.Name, ch.Address)
				}
				continue
			}
			if subj, _ := events.SubjectOf(msg.Name); subj != ch.Address {
				t.Errorf("channel %s: address %s, but %s is published on %s", name, ch.Address, msg.Name, subj)
			}
		}
	}
}

type asyncAPIDoc struct {
	AsyncAPI string `yaml:"asyncapi"`
	Info     struct {
		Title, Version string
	}
	Channels map[string]struct {
		Address  string
		Messages map[string]struct {
			Ref string `yaml:"$ref"`
		}
	}
	Operations map[string]struct {
		Action  string
		Channel struct {
			Ref string `yaml:"$ref"`
		}
		Messages []struct {
			Ref string `yaml:"$ref"`
		}
	}
	Components struct {
		Schemas  map[string]any
		Messages map[string]struct {
			Name        string
			ContentType string `yaml:"contentType"`
			Payload     struct {
				Ref   string `yaml:"$ref"`
				AllOf []struct {
					Ref        string `yaml:"$ref"`
					Properties map[string]struct {
						Const string
						Ref   string `yaml:"$ref"`
					}
				} `yaml:"allOf"`
			}
			Examples []struct {
				Name    string
				Payload map[string]any
			}
		}
	}
}

func loadAsyncAPI(t *testing.T) asyncAPIDoc {
	t.Helper()
	raw, err := schemas.FS.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPIDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	return doc
}

// TestAsyncAPIDocumentIsValid checks the structure AsyncAPI 3.0 requires
// and that every reference resolves and every example is a valid event.
func TestAsyncAPIDocumentIsValid(t *testing.T) {
	doc := loadAsyncAPI(t)
	if doc.AsyncAPI != "3.0.0" || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("asyncapi %q, info %+v: want 3.0.0 with title and version", doc.AsyncAPI, doc.Info)
	}
	for name, op := range doc.Operations {
		if op.Action != "send" && op.Action != "receive" {
			t.Errorf("operation %s: action %q", name, op.Action)
		}
		ch, ok := doc.Channels[strings.TrimPrefix(op.Channel.Ref, "#/channels/")]
		if !ok {
			t.Errorf("operation %s: channel %s does not resolve", name, op.Channel.Ref)
			continue
		}
		for _, m := range op.Messages {
			parts := strings.Split(strings.TrimPrefix(m.Ref, "#/channels/"), "/messages/")
			if len(parts) != 2 || doc.Channels[parts[0]].Address != ch.Address {
				t.Errorf("operation %s: message %s is not in its channel", name, m.Ref)
			}
			if _, ok := ch.Messages[parts[1]]; !ok {
				t.Errorf("operation %s: message %s does not resolve", name, m.Ref)
			}
		}
	}
	codec := events.NewCodec(schemaSet)
	for key, m := range doc.Components.Messages {
		if slices.Contains(schemas.ServiceBodies, m.Name) {
			if m.Payload.Ref != "./"+m.Name+".json" || len(m.Examples) == 0 {
				t.Errorf("message %s: payload %q, %d examples", key, m.Payload.Ref, len(m.Examples))
			}
			for _, ex := range m.Examples {
				body, _ := json.Marshal(ex.Payload)
				if err := schemaSet.Validate(m.Name, body); err != nil {
					t.Errorf("message %s example: %v", key, err)
				}
			}
			continue
		}
		if m.ContentType != events.ContentTypeStructured {
			t.Errorf("message %s: contentType %q", key, m.ContentType)
		}
		var dataRef string
		for _, part := range m.Payload.AllOf {
			if part.Ref != "" && part.Ref != "#/components/schemas/cloudEvent" {
				t.Errorf("message %s: payload ref %s", key, part.Ref)
			}
			if p, ok := part.Properties["data"]; ok {
				dataRef = p.Ref
			}
		}
		if dataRef != "./"+m.Name+".json" {
			t.Errorf("message %s: data refers to %q, want ./%s.json", key, dataRef, m.Name)
		}
		if len(m.Examples) == 0 {
			t.Errorf("message %s: no example", key)
		}
		for _, ex := range m.Examples {
			body, _ := json.Marshal(ex.Payload)
			if _, err := codec.Decode(nil, body); err != nil {
				t.Errorf("message %s example %s: %v", key, ex.Name, err)
			}
		}
	}
}

// TestSchemaExamplesValidate: each schema's own example is valid data.
func TestSchemaExamplesValidate(t *testing.T) {
	for _, typ := range schemaSet.Types() {
		raw, _ := schemas.FS.ReadFile(typ + ".json")
		var s struct {
			Examples []json.RawMessage `json:"examples"`
		}
		if err := json.Unmarshal(raw, &s); err != nil || len(s.Examples) == 0 {
			t.Fatalf("%s: no examples (%v)", typ, err)
		}
		for _, ex := range s.Examples {
			if err := schemaSet.Validate(typ, ex); err != nil {
				t.Errorf("%s example: %v", typ, err)
			}
		}
	}
}

func TestSchemaRules(t *testing.T) {
	order := func(edit func(m map[string]any)) []byte {
		m := map[string]any{
			"orderId": "o-1", "period": 24, "locale": "et-EE", "description": "d",
			"returnUrl": "https://shop.example/r", "cancelUrl": "https://shop.example/c",
			"heroDevice": map[string]any{"identifierType": "EAN", "identifier": "1", "modelId": "m", "modelName": "M", "netPrice": 10},
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name  string
		data  []byte
		field string
		rule  string
	}{
		{"valid", order(func(map[string]any) {}), "", ""},
		{"extra top-level field is allowed", order(func(m map[string]any) { m["loyaltyTier"] = "gold" }), "", ""},
		{"missing description", order(func(m map[string]any) { delete(m, "description") }), "", "missing required description"},
		{"negative price", order(func(m map[string]any) { m["heroDevice"].(map[string]any)["netPrice"] = -1 }), "/heroDevice/netPrice", "minimum violated"},
		{"bad identifier type", order(func(m map[string]any) { m["heroDevice"].(map[string]any)["identifierType"] = "SKU" }), "/heroDevice/identifierType", "must be one of EAN, MANUFACTURER_PRODUCT_CODE"},
		{"period not a number", order(func(m map[string]any) { m["period"] = "24" }), "/period", "must be integer, got string"},
		{"customer names without identity code", order(func(m map[string]any) {
			m["customer"] = map[string]any{"firstName": "Mari", "lastName": "Maasikas"}
		}), "/customer", "firstName requires identityCode"},
		{"email without mobile", order(func(m map[string]any) { m["customer"] = map[string]any{"email": "mari@example.ee"} }), "/customer", "email requires mobile"},
		{"bad email", order(func(m map[string]any) {
			m["customer"] = map[string]any{"email": "mari-at-example.ee", "mobile": "+372 5555 5555"}
		}), "/customer/email", "must be a valid email"},
		{"currency USD", order(func(m map[string]any) { m["currency"] = "USD" }), "/currency", "must be one of EUR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemaSet.Validate(events.TypeOrderPlaced, tt.data)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("err = %v, want valid", err)
				}
				return
			}
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field || fe.Rule != tt.rule {
				t.Fatalf("got field %q rule %q, want %q %q", fe.Field, fe.Rule, tt.field, tt.rule)
			}
			for _, pii := range []string{"Mari", "Maasikas", "mari-at-example.ee", "USD"} {
				if strings.Contains(err.Error(), pii) {
					t.Fatalf("error quotes the value %q: %v", pii, err)
				}
			}
		})
	}
}

// TestGoldenEvents encodes one sample of every type and compares it with
// testdata/<type>.json; each golden file is also checked against schemas/.
func TestGoldenEvents(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	for typ, data := range samples() {
		t.Run(typ, func(t *testing.T) {
			e, err := codec.New("urn:smartrent:test", typ, "ORD-1001", data)
			if err != nil {
				t.Fatal(err)
			}
			e.SetID("00000000-0000-4000-8000-000000000001")
			e.SetTime(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
			body, err := codec.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			// On the wire: one compact JSON value, as json.Marshal writes it.
			var compact bytes.Buffer
			if err := json.Compact(&compact, body); err != nil || compact.String() != string(body) {
				t.Fatalf("encoded event is not compact JSON (%v):\n%s", err, body)
			}
			var pretty map[string]any
			json.Unmarshal(body, &pretty)
			got, _ := json.MarshalIndent(pretty, "", "  ")
			got = append(got, '\n')
			path := filepath.Join("testdata", typ+".json")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/events -run TestGoldenEvents -update)", err)
			}
			if string(got) != string(want) {
				t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
			}
			if _, err := codec.Decode(nil, want); err != nil {
				t.Fatalf("golden file is not a valid event: %v", err)
			}
		})
	}
}

func TestSamplesCoverEveryType(t *testing.T) {
	var got []string
	for typ, data := range samples() {
		got = append(got, typ)
		if reflect.TypeOf(data) != reflect.TypeOf(events.TypeOf(typ)).Elem() {
			t.Errorf("%s: sample is %T", typ, data)
		}
	}
	slices.Sort(got)
	if want := events.Types(); !slices.Equal(got, want) {
		t.Fatalf("samples for %v, want %v", got, want)
	}
}

// TestEventsIsTheContractOnly: the event contract depends on no
// transport and no Inbank client: no NATS, no HTTP, no internal/inbank.
func TestEventsIsTheContractOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasSuffix(dep, "/internal/inbank") || strings.HasPrefix(dep, "github.com/nats-io/") || dep == "net/http" {
			t.Errorf("internal/events depends on %s", dep)
		}
	}
}

// TestEncodeRefusesDataBase64 keeps JSON data in "data": sdk-go writes
// "data_base64" for data set as []byte, which other languages' consumers
// do not read as the event's data.
func TestEncodeRefusesDataBase64(t *testing.T) {
	codec := events.NewCodec(schemaSet)
	raw, _ := json.Marshal(samples()[events.TypeOrderRejected])
	e, err := codec.New("urn:smartrent:test", events.TypeOrderRejected, "ORD-1001", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	body, err := codec.Encode(e)
	if err != nil {
		t.Fatalf("json.RawMessage data: %v", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil || probe["data_base64"] != nil || !strings.HasPrefix(string(probe["data"]), "{") {
		t.Fatalf("body %s", body)
	}
	if err := e.SetData(events.ContentTypeJSON, raw); err != nil { // []byte: binary in sdk-go
		t.Fatal(err)
	}
	if _, err := codec.Encode(e); !errors.Is(err, events.ErrBinaryData) {
		t.Fatalf("[]byte data encoded: err = %v", err)
	}
}

// TestSchemasReferenceNoOtherFile keeps every schema self-contained: a $ref
// to another file's urn: $id stops the AsyncAPI parser and code
// generators, and a relative one resolves against the urn: base. The batch
// reply therefore carries the quote reply as $defs/quote, kept equal here.
func TestSchemasReferenceNoOtherFile(t *testing.T) {
	for _, typ := range schemaSet.Types() {
		raw, _ := schemas.FS.ReadFile(typ + ".json")
		for _, m := range regexp.MustCompile(`"\$ref":\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1) {
			if !strings.HasPrefix(m[1], "#") {
				t.Errorf("%s: $ref %q leaves the file", typ, m[1])
			}
		}
	}
	var quote, batch map[string]any
	raw, _ := schemas.FS.ReadFile("smartrent.quote.reply.v1.json")
	json.Unmarshal(raw, &quote)
	raw, _ = schemas.FS.ReadFile("smartrent.quote.batch.reply.v1.json")
	json.Unmarshal(raw, &batch)
	for _, k := range []string{"$schema", "$id", "examples"} {
		delete(quote, k)
	}
	if got := batch["$defs"].(map[string]any)["quote"]; !reflect.DeepEqual(got, quote) {
		t.Fatalf("smartrent.quote.batch.reply.v1 $defs/quote differs from smartrent.quote.reply.v1:\n%v\n%v", got, quote)
	}
}

// TestOneLimitForIdsInEverySchema: every schema names the order id and the
// shop alias with the limit of package ids, and the codec agrees.
func TestOneLimitForIdsInEverySchema(t *testing.T) {
	for _, typ := range schemaSet.Types() {
		raw, _ := schemas.FS.ReadFile(typ + ".json")
		var s struct {
			Properties map[string]struct {
				MinLength *int   `json:"minLength"`
				MaxLength *int   `json:"maxLength"`
				Pattern   string `json:"pattern"`
			}
		}
		json.Unmarshal(raw, &s)
		if p, ok := s.Properties["orderId"]; ok {
			if p.MinLength == nil || *p.MinLength != 1 || p.MaxLength == nil || *p.MaxLength != ids.MaxOrderIDLen || p.Pattern != `^[^\p{Cc}]+$` {
				t.Errorf("%s: orderId is not 1–%d characters without control characters", typ, ids.MaxOrderIDLen)
			}
		}
		if p, ok := s.Properties["shop"]; ok && p.Pattern != ids.ShopAliasPattern.String() {
			t.Errorf("%s: shop pattern %q, want %q", typ, p.Pattern, ids.ShopAliasPattern)
		}
	}
	for _, id := range []string{strings.Repeat("x", ids.MaxOrderIDLen+1), "ORD\x001", "ORD\n1", "ORD\u00851"} {
		if ids.CheckOrderID(id) == nil {
			t.Errorf("ids accepts %q", id)
		}
		if err := schemaSet.Validate(events.TypeDeviceShipped, []byte(`{"orderId":`+strconvQuote(id)+`,"assetIdentifiers":[{"identifier":"356938035643809","identifierType":"IMEI"}]}`)); err == nil {
			t.Errorf("the schema accepts order id %q", id)
		}
	}
	for _, id := range []string{strings.Repeat("ü", ids.MaxOrderIDLen), "lv-web/ORD-1", ".", "*", ">", "../x", "ORD 1"} {
		if err := ids.CheckOrderID(id); err != nil {
			t.Errorf("ids refuses %q: %v", id, err)
		}
		if err := schemaSet.Validate(events.TypeDeviceShipped, []byte(`{"orderId":`+strconvQuote(id)+`,"assetIdentifiers":[{"identifier":"356938035643809","identifierType":"IMEI"}]}`)); err != nil {
			t.Errorf("the schema refuses order id %q: %v", id, err)
		}
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
