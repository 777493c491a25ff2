// Command image assembles the container image of the Smart Rent bridge
// without Docker: one layer holding bridge, webhook-ingress and
// smartrentctl (static, CGO off) on an empty base, run as a non-root user,
// for linux/amd64 and linux/arm64. It writes an OCI image layout (push it
// with `crane push` or `skopeo copy oci:…`) and, per architecture, a
// tarball for `docker load`.
//
//	go run ./tools/image -bin dist/bin -out dist/image -version v1.2.3
//
// -bin holds one directory per platform, linux_amd64/ and linux_arm64/,
// with the three binaries in each (make image builds them).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binaries are the programs in the image, under BinDir.
var Binaries = []string{"bridge", "webhook-ingress", "smartrentctl"}

const (
	// BinDir is where the binaries are; the entrypoint is the bridge,
	// the chart runs the ingress with command: [webhook-ingress].
	BinDir = "/usr/local/bin"
	// User is the numeric non-root user and group (the "nonroot" of
	// distroless images); numeric, because there is no /etc/passwd.
	User = "65532:65532"
	// Repository names the image in the docker-load tarballs.
	Repository = "ghcr.io/smartrent-bridge/smartrent-bridge"
)

// Meta labels the image.
type Meta struct {
	Version, Revision string
	Created           time.Time // SOURCE_DATE_EPOCH: the same inputs make the same image
}

func main() {
	bin := flag.String("bin", "dist/bin", "directory with linux_amd64/ and linux_arm64/ holding the binaries")
	out := flag.String("out", "dist/image", "OCI image layout to write (replaced)")
	tars := flag.String("tar", "dist", "directory for the docker-load tarballs smartrent-bridge-<arch>.tar")
	platforms := flag.String("platforms", "amd64,arm64", "linux architectures, comma-separated")
	var m Meta
	flag.StringVar(&m.Version, "version", "devel", "image version (label and tag)")
	flag.StringVar(&m.Revision, "revision", "", "VCS revision (label)")
	flag.Parse()
	m.Created = time.Unix(0, 0).UTC()
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		var sec int64
		if _, err := fmt.Sscan(epoch, &sec); err != nil {
			fatal(fmt.Errorf("SOURCE_DATE_EPOCH: %w", err))
		}
		m.Created = time.Unix(sec, 0).UTC()
	}
	images := map[string]v1.Image{}
	for _, arch := range strings.Split(*platforms, ",") {
		img, err := Build(filepath.Join(*bin, "linux_"+arch), arch, m)
		if err != nil {
			fatal(err)
		}
		images[arch] = img
	}
	if err := WriteLayout(*out, images); err != nil {
		fatal(err)
	}
	for arch, img := range images {
		ref, err := name.NewTag(Repository + ":" + tagSafe(m.Version) + "-" + arch)
		if err != nil {
			fatal(err)
		}
		path := filepath.Join(*tars, "smartrent-bridge-"+arch+".tar")
		if err := tarball.WriteToFile(path, ref, img); err != nil {
			fatal(fmt.Errorf("write %s: %w", path, err))
		}
		size, _ := imageSize(img)
		fmt.Printf("linux/%s: %s (compressed layer %d bytes) and %s\n", arch, *out, size, path)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

func tagSafe(v string) string { return strings.NewReplacer("+", "_", "/", "-").Replace(v) }

// Build is the image for linux/arch from the binaries in dir.
func Build(dir, arch string, m Meta) (v1.Image, error) {
	layerTar, err := binaryLayer(dir, m.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: m.Created}, CreatedBy: "tools/image: " + strings.Join(Binaries, ", ") + " in " + BinDir, Comment: "static Go binaries",
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", arch, v1.Time{Time: m.Created}
	cfg.Config.User = User
	cfg.Config.Entrypoint = []string{BinDir + "/bridge"}
	cfg.Config.Env = []string{"PATH=" + BinDir}
	cfg.Config.WorkingDir = "/"
	cfg.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "9090/tcp": {}, "9091/tcp": {}}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "smartrent-bridge",
		"org.opencontainers.image.description": "Event-driven bridge between a shop's systems on NATS JetStream and the Inbank Smart Rent e-POS partner API v3",
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.source":      "https://github.com/smartrent-bridge/bridge",
	}
	return mutate.ConfigFile(img, cfg)
}

// binaryLayer is a tar of the binaries under BinDir, owned by root and
// not writable by the user the image runs as.
func binaryLayer(dir string, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, b := range Binaries {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w (make image builds them)", b, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(BinDir, "/") + "/" + b, Mode: 0o755, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteLayout writes an OCI image layout at dir holding one index of the
// images by platform.
func WriteLayout(dir string, images map[string]v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64", "arm", "ppc64le", "s390x"} {
		img, ok := images[arch]
		if !ok {
			continue
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	if _, err := layout.Write(dir, idx); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return nil
}

func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}
