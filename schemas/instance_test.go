package schemas

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sameAsLibrary fails unless instance (and wellFormedInstance, on data
// that meets its precondition) decodes data as jsonschema's own
// UnmarshalJSON does: the same value, or an error both times.
func sameAsLibrary(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	check := func(name string, got any, err error) {
		t.Helper()
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s(%q): error %v, library's %v", name, data, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s(%q): decoded %#v, library decoded %#v", name, data, got, want)
		}
	}
	var set Set
	got, err := set.instance(data)
	check("instance", got, err)
	if json.Valid(data) { // wellFormedInstance's precondition
		got, err := set.wellFormedInstance(data)
		check("wellFormedInstance", got, err)
	}
}

// trickyJSON is what a lax parser gets wrong, valid or not.
var trickyJSON = []string{
	`{}`, `[]`, `null`, `true`, `0`, `-0`, `1e400`, `123456789012345678901234567890`, `0.10`, `1E+2`,
	`nan`, `NaN`, `inf`, `-Inf`, `+1`, `1.2.3`, `01`, `1.`, `.5`, `-`, `1e`, `"a"`, `""`,
	`{"a":1,"a":2}`, `{"a":{"b":[1,"x",null,false,{"c":1.50}]}}`, `  {"a" : [ ] }  `,
	`{"a":1} x`, `{"a":1}{}`, `{"a":1`, `{"a":01}`, `{'a':1}`, `{"a":"\x01"}`,
	`{"k\"ey":"v\\al\n\t\/"}`, `{"a":"\u00e9\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"\u0061":1}`,
	"{\"a\":\"\xff\"}", "{\"\xc3\":1}", `{"a":"é😀"}`,
}

func TestInstanceIsWhatTheLibraryDecodes(t *testing.T) {
	for _, s := range trickyJSON {
		sameAsLibrary(t, []byte(s))
	}
	deep := bytes.Repeat([]byte("["), 400)
	sameAsLibrary(t, append(deep, bytes.Repeat([]byte("]"), 400)...))
	// Every schema, and every sample event of the contract tests.
	files, _ := fs.Glob(FS, "*.json")
	samples, _ := filepath.Glob("../internal/events/testdata/*.json")
	if len(files) == 0 || len(samples) == 0 {
		t.Fatalf("found %d schemas and %d samples", len(files), len(samples))
	}
	for _, f := range files {
		b, _ := FS.ReadFile(f)
		sameAsLibrary(t, b)
	}
	for _, f := range samples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sameAsLibrary(t, b)
	}
}

// FuzzInstance holds instance to the library's decode for any bytes.
// `go test -fuzz FuzzInstance ./schemas` explores beyond the seeds.
func FuzzInstance(f *testing.F) {
	for _, s := range trickyJSON {
		f.Add([]byte(s))
	}
	samples, _ := filepath.Glob("../internal/events/testdata/*.json")
	for _, p := range samples {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsLibrary(t, data) })
}

func BenchmarkValidate(b *testing.B) {
	s := MustLoad()
	for _, typ := range []string{"smartrent.order.placed.v1", "smartrent.session.created.v1"} {
		raw, err := os.ReadFile("../internal/events/testdata/" + typ + ".json")
		if err != nil {
			b.Fatal(err)
		}
		data := dataOf(b, raw)
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Validate(typ, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dataOf is a sample event's data.
func dataOf(b *testing.B, event []byte) []byte {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := v.(map[string]any)
	data, err := json.Marshal(m["data"])
	if err != nil {
		b.Fatal(err)
	}
	return data
}
