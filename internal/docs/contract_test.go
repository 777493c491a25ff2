package docs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/schemas"
)

// TestContractDocumentInStep keeps docs/contract.md, the document other
// teams build against, in step with schemas/ and asyncapi.yaml: every
// event type has its row with its subject, every required field is bold
// in that row and every bold field exists in the schema, every channel and
// every rejection reason the schema lists is named.
func TestContractDocumentInStep(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	rows := map[string]string{} // event type → its table row
	row := regexp.MustCompile("(?m)^\\| `(smartrent\\.[a-z_.]+)` \\| `(smartrent\\.[a-z_.]+\\.v[0-9]+)` \\|(.*)$")
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		if subj, ok := events.SubjectOf(m[2]); !ok || subj != m[1] {
			t.Errorf("docs/contract.md: row %s → %s, but the type's subject is %q", m[1], m[2], subj)
		}
		rows[m[2]] = m[3]
	}
	bold := regexp.MustCompile(`\*\*([A-Za-z]+)\*\*`)
	set := schemas.MustLoad()
	for _, typ := range set.EventTypes() {
		r, ok := rows[typ]
		if !ok {
			t.Errorf("docs/contract.md has no row for %s", typ)
			continue
		}
		var s map[string]any
		b, _ := schemas.FS.ReadFile(typ + ".json")
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		var named []string
		for _, m := range bold.FindAllStringSubmatch(r, -1) {
			named = append(named, m[1])
			if !hasProperty(s, m[1]) {
				t.Errorf("%s: docs/contract.md names **%s**, the schema has no such field", typ, m[1])
			}
		}
		for _, req := range s["required"].([]any) {
			if !slices.Contains(named, req.(string)) {
				t.Errorf("%s: required field %s is not bold in docs/contract.md", typ, req)
			}
		}
	}

	var api struct {
		Channels map[string]struct{ Address string }
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &api); err != nil {
		t.Fatal(err)
	}
	for name, c := range api.Channels {
		if !strings.Contains(doc, "`"+c.Address+"`") {
			t.Errorf("asyncapi channel %s (%s) is not in docs/contract.md", name, c.Address)
		}
	}

	var rejected struct {
		Properties struct {
			Reason struct{ Examples []string }
		}
	}
	b, _ = schemas.FS.ReadFile(events.TypeOrderRejected + ".json")
	json.Unmarshal(b, &rejected)
	if len(rejected.Properties.Reason.Examples) == 0 {
		t.Fatal("order.rejected schema lists no reasons")
	}
	for _, reason := range rejected.Properties.Reason.Examples {
		if !strings.Contains(doc, "`"+reason+"`") {
			t.Errorf("reason %s is not in docs/contract.md", reason)
		}
	}
}

// hasProperty reports whether name is a property anywhere in schema s.
func hasProperty(s any, name string) bool {
	switch v := s.(type) {
	case map[string]any:
		if props, ok := v["properties"].(map[string]any); ok {
			if _, ok := props[name]; ok {
				return true
			}
		}
		for _, sub := range v {
			if hasProperty(sub, name) {
				return true
			}
		}
	case []any:
		for _, sub := range v {
			if hasProperty(sub, name) {
				return true
			}
		}
	}
	return false
}
