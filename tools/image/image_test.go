package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestImage builds the image for this machine's architecture from freshly
// built binaries, then reads it back the way a runtime would, following
// the OCI image-layout spec with plain JSON and tar (not the library that
// wrote it): digests match contents, the entrypoint and user are right,
// the layer holds only the three binaries (no shell), owned by root, and
// each binary from the image answers --version with the stamped version.
func TestImage(t *testing.T) {
	arch := runtime.GOARCH
	work := t.TempDir()
	binDir := filepath.Join(work, "linux_"+arch)
	const stamped = "v9.8.7-imagetest"
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X github.com/smartrent-bridge/bridge/internal/version.stamped=" + stamped, "-o", binDir + "/"}
	for _, b := range Binaries {
		args = append(args, "../../cmd/"+b)
	}
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	img, err := Build(binDir, arch, Meta{Version: stamped, Revision: "abc123", Created: time.Unix(0, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "image")
	if err := WriteLayout(dir, map[string]v1.Image{arch: img}); err != nil {
		t.Fatal(err)
	}

	var marker struct{ ImageLayoutVersion string }
	readJSON(t, filepath.Join(dir, "oci-layout"), &marker)
	if marker.ImageLayoutVersion != "1.0.0" {
		t.Fatalf("oci-layout: %+v", marker)
	}
	var index struct {
		MediaType string
		Manifests []descriptor
	}
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if index.MediaType != "application/vnd.oci.image.index.v1+json" || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %+v", index)
	}
	d := index.Manifests[0]
	if d.Platform.OS != "linux" || d.Platform.Architecture != arch || d.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest descriptor: %+v", d)
	}
	var manifest struct {
		MediaType string
		Config    descriptor
		Layers    []descriptor
	}
	blobJSON(t, dir, d, &manifest)
	var config struct {
		OS, Architecture string
		Config           struct {
			User       string
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
		}
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	blobJSON(t, dir, manifest.Config, &config)
	if config.OS != "linux" || config.Architecture != arch {
		t.Errorf("config platform %s/%s", config.OS, config.Architecture)
	}
	if config.Config.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", config.Config.User)
	}
	if !slices.Equal(config.Config.Entrypoint, []string{"/usr/local/bin/bridge"}) || len(config.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q", config.Config.Entrypoint, config.Config.Cmd)
	}
	if config.Config.Labels["org.opencontainers.image.version"] != stamped || config.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Errorf("labels %v", config.Config.Labels)
	}
	if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("layers: %+v", manifest.Layers)
	}

	layer := blob(t, dir, manifest.Layers[0])
	zr, err := gzip.NewReader(strings.NewReader(string(layer)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("diff_ids %v do not match the uncompressed layer", config.RootFS.DiffIDs)
	}
	extracted := filepath.Join(work, "rootfs")
	tr := tar.NewReader(strings.NewReader(string(raw)))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Mode&0o022 != 0 {
			t.Errorf("%s: owner %d:%d mode %o: the image's user must not be able to change it", h.Name, h.Uid, h.Gid, h.Mode)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		path := filepath.Join(extracted, h.Name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(path, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/bridge", "usr/local/bin/webhook-ingress", "usr/local/bin/smartrentctl"}
	if !slices.Equal(names, want) {
		t.Fatalf("layer holds %q, want only %q (no shell, nothing else)", names, want)
	}
	for _, b := range Binaries {
		out, err := exec.Command(filepath.Join(extracted, "usr/local/bin", b), "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), b+" "+stamped+" (commit ") {
			t.Errorf("%s --version: %v %q", b, err, out)
		}
	}
	pushAsCraneDoes(t, dir, arch)
	t.Logf("linux/%s image: compressed layer %.1f MiB, binaries %.1f MiB uncompressed", arch,
		float64(manifest.Layers[0].Size)/(1<<20), float64(len(raw))/(1<<20))
}

type descriptor struct {
	MediaType string
	Digest    string
	Size      int64
	Platform  struct{ OS, Architecture string }
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// blob reads the blob d names and checks its size and digest.
func blob(t *testing.T, dir string, d descriptor) []byte {
	t.Helper()
	algo, hexSum, ok := strings.Cut(d.Digest, ":")
	if !ok || algo != "sha256" {
		t.Fatalf("digest %q", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", algo, hexSum))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexSum || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
	}
	return b
}

func blobJSON(t *testing.T, dir string, d descriptor, v any) {
	t.Helper()
	if err := json.Unmarshal(blob(t, dir, d), v); err != nil {
		t.Fatal(fmt.Errorf("blob %s: %w", d.Digest, err))
	}
}

// TestDockerfileMatchesImage: the Dockerfile builds what tools/image
// builds: the same binaries, place, user and entrypoint.
func TestDockerfileMatchesImage(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"FROM scratch\n",
		"COPY --from=build /out/ " + BinDir + "/\n",
		"USER " + User + "\n",
		`ENTRYPOINT ["` + BinDir + `/bridge"]` + "\n",
		"ENV PATH=" + BinDir + "\n",
		"CGO_ENABLED=0",
		// The version and the commit are stamped however it is built: from
		// build args, else from the checkout in the build context.
		"version.stamped=${version}", "version.stampedRevision=${revision}", "git describe", "git rev-parse HEAD",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if ignore, err := os.ReadFile("../../.dockerignore"); err == nil && strings.Contains(string(ignore), ".git") {
		t.Error(".dockerignore leaves .git out: a plain docker build could not stamp its version and commit")
	}
	for _, bin := range Binaries {
		if !strings.Contains(df, "./cmd/"+bin) {
			t.Errorf("Dockerfile does not build %s", bin)
		}
	}
	// The builder is the Go the Makefile builds releases with.
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^export GOTOOLCHAIN \?= go(\d+\.\d+\.\d+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile names no GOTOOLCHAIN")
	}
	if want := "FROM golang:" + string(m[1]) + "-"; !strings.Contains(df, want) {
		t.Errorf("Dockerfile's builder is not %q (the Makefile's Go)", want)
	}
}

// pushAsCraneDoes pushes the layout the way the README's
// `crane push --index dist/image REF` does (crane reads the layout's index
// and writes it with remote.WriteIndex) to an in-process registry, then
// pulls the platform's image back: the layout is pushable as it is.
func pushAsCraneDoes(t *testing.T, dir, arch string) {
	t.Helper()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(reg.URL, "http://") + "/smartrent-bridge:test")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push: %v", err)
	}
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	if err != nil {
		t.Fatalf("pull linux/%s: %v", arch, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != User || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != BinDir+"/bridge" {
		t.Fatalf("pulled image: user %q entrypoint %q", cfg.Config.User, cfg.Config.Entrypoint)
	}
}
