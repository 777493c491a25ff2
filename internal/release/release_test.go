package release

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestReleaseArtefacts runs scripts/release.sh for one Linux and one
// macOS platform and checks every artefact as a user downloading them
// would: the checksums verify, each archive holds its platform's
// binaries, each binary has a CycloneDX SBOM naming the module versions
// it was built with, and the Linux binary runs and reports the release
// version and the commit.
func TestReleaseArtefacts(t *testing.T) {
	const version = "0.0.0-test"
	out := t.TempDir()
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("scripts/release.sh", version, out)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RELEASE_PLATFORMS=linux/"+runtime.GOARCH+" darwin/arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}

	// SHA256SUMS covers every other file, and each sum is right.
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(sums)))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: checksum does not match", name)
		}
		listed[name] = true
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if e.Name() != "SHA256SUMS" && !listed[e.Name()] {
			t.Errorf("%s is not in SHA256SUMS", e.Name())
		}
	}

	linux := "smartrent-bridge-" + version + "-linux-" + runtime.GOARCH
	want := map[string][]string{
		linux: {"CHANGELOG.md", "README.md", "bridge", "smartrentctl", "webhook-ingress"},
		"smartrent-bridge-" + version + "-darwin-arm64": {"CHANGELOG.md", "README.md", "smartrentctl"},
	}
	dir := t.TempDir()
	for name, files := range want {
		got := untar(t, filepath.Join(out, name+".tar.gz"), dir)
		if !slices.Equal(got, files) {
			t.Errorf("%s.tar.gz holds %v, want %v", name, got, files)
		}
		os_, arch := platformOf(name)
		for _, bin := range files {
			if strings.HasSuffix(bin, ".md") {
				continue
			}
			checkSBOM(t, filepath.Join(out, bin+"-"+version+"-"+os_+"-"+arch+".cdx.json"), version)
		}
	}

	head, _ := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	b, err := exec.Command(filepath.Join(dir, linux, "bridge"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("bridge --version: %v %s", err, b)
	}
	if !strings.Contains(string(b), version) || !strings.Contains(string(b), "commit "+string(head[:12])) {
		t.Errorf("bridge --version = %q, want %s and commit %.12s", b, version, head)
	}
}

func platformOf(archive string) (string, string) {
	f := strings.Split(archive, "-")
	return f[len(f)-2], f[len(f)-1]
}

// untar extracts an archive into dir and returns the names of the files
// under its single top-level folder, sorted.
func untar(t *testing.T, path, dir string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d", path, h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		top, rest, _ := strings.Cut(h.Name, "/")
		if top+".tar.gz" != filepath.Base(path) {
			t.Errorf("%s: %s is not under %s/", path, h.Name, strings.TrimSuffix(filepath.Base(path), ".tar.gz"))
		}
		names = append(names, rest)
		dst := filepath.Join(dir, h.Name)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(dst, b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)
	return names
}

// checkSBOM reads a CycloneDX SBOM: it names our module at the release
// version and the dependencies the binary was linked with, at the
// versions of go.mod.
func checkSBOM(t *testing.T, path, version string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no SBOM: %v", err)
		return
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct{ Name, Version string }
		}
		Components []struct{ Name, Version, Purl string }
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" || bom.Metadata.Component.Name != "github.com/smartrent-bridge/bridge" || bom.Metadata.Component.Version != version {
		t.Errorf("%s: %s %s of %+v", path, bom.BOMFormat, bom.SpecVersion, bom.Metadata.Component)
	}
	gomod, _ := os.ReadFile("../../go.mod")
	natsVersion := ""
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/nats-io/nats.go" {
			natsVersion = f[1]
		}
	}
	if !slices.ContainsFunc(bom.Components, func(c struct{ Name, Version, Purl string }) bool {
		return c.Name == "github.com/nats-io/nats.go" && c.Version == natsVersion && strings.HasPrefix(c.Purl, "pkg:golang/")
	}) {
		t.Errorf("%s does not list nats.go %s", path, natsVersion)
	}
}

// TestChartPullsWhatReleaseBuilds: `make release` builds the chart's
// appVersion, the image tag the chart pulls by default.
func TestChartPullsWhatReleaseBuilds(t *testing.T) {
	chart, err := os.ReadFile("../../deploy/helm/smartrent-bridge/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	appVersion := ""
	for _, line := range strings.Split(string(chart), "\n") {
		if v, ok := strings.CutPrefix(line, "appVersion:"); ok {
			appVersion = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	cmd := exec.Command("make", "-s", "release-version")
	cmd.Dir = "../.."
	got, err := cmd.Output()
	if err != nil || appVersion == "" || strings.TrimSpace(string(got)) != appVersion {
		t.Fatalf("make release-version = %q (%v), the chart's appVersion %q", got, err, appVersion)
	}
}
