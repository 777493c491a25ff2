package version

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSemVer(t *testing.T) {
	for v, want := range map[string]string{
		"v1.2.3": "1.2.3", "1.2.3": "1.2.3", "v0.4.0-rc.1": "0.4.0-rc.1", "v1.2.3+meta": "1.2.3+meta",
		"devel": "0.0.0-devel", "v1.2": "0.0.0-devel", "v01.2.3": "0.0.0-devel", "": "0.0.0-devel",
	} {
		if got := (Info{Version: v}).SemVer(); got != want {
			t.Errorf("SemVer(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestString(t *testing.T) {
	got := Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", Modified: true, GoVersion: "go1.26.8"}.String()
	if want := "v1.2.3 (commit 0123456789ab+modified, go1.26.8)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Info{Version: "devel", GoVersion: "go1.26.8"}).String(); !strings.Contains(got, "commit unknown") {
		t.Errorf("String without revision = %q", got)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("bridge"))
	i := Get()
	want := `# HELP smartrent_build_info Build of the running binary (always 1).
# TYPE smartrent_build_info gauge
smartrent_build_info{binary="bridge",goversion="` + i.GoVersion + `",revision="` + i.Revision + `",version="` + i.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartrent_build_info"); err != nil {
		t.Fatal(err)
	}
}
