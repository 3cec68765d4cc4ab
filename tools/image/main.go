// Command image builds tidemark's container image without a container
// daemon: it compiles the static binaries, lays them out with time-zone
// data, CA certificates and a non-root user in one layer, and writes an OCI
// image archive (an OCI image layout in a tar, as `podman load`, `skopeo
// copy oci-archive:…` and `crane push` take it).
//
//	go run ./tools/image -o bin/tidemark-image.tar
//
// Two builds of the same commit give the same bytes: the binaries are built
// with -trimpath, every file and the image's creation time carry the
// commit's time, and files are written in a fixed order.
package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: not root, with a fixed id that Kubernetes'
// runAsNonRoot can check without reading /etc/passwd.
const (
	uid  = 65532
	user = "tidemark"
)

// binaries are the commands the image holds, under /usr/local/bin; the first
// is the entrypoint.
var binaries = []string{"worker", "enqueue"}

// caBundle is where Debian keeps the CA certificates; the image holds them at
// the same path, where Go's crypto/x509 looks.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	out := flag.String("o", "bin/tidemark-image.tar", "the OCI image archive to write")
	flag.Usage = func() {
		fmt.Fprintln(os.Stdout, "usage: go run ./tools/image [-o bin/tidemark-image.tar]")
		flag.CommandLine.SetOutput(os.Stdout)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "image: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	res, err := Build(".", *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: %s, version %s, digest %s\n", *out, res.Ref, res.Version, res.Digest)
}

// Result says what Build wrote.
type Result struct {
	Ref     string  // the reference name in the archive's index (tidemark:<version>)
	Version string  // the module version stamped into the binaries
	Digest  v1.Hash // the image manifest's digest
}

// Build compiles the binaries of the module at root and writes the image
// archive to out.
func Build(root, out string) (Result, error) {
	tmp, err := os.MkdirTemp("", "tidemark-image-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)
	bins := map[string][]byte{}
	for _, name := range binaries {
		path := filepath.Join(tmp, name)
		// -buildvcs=auto over a GOFLAGS that turns stamping off: the version,
		// commit and time come from the repository when there is one.
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=auto", "-o", path, "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			return Result{}, fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		if bins[name], err = os.ReadFile(path); err != nil {
			return Result{}, err
		}
	}
	info, err := buildinfo.ReadFile(filepath.Join(tmp, binaries[0]))
	if err != nil {
		return Result{}, fmt.Errorf("build info of %s: %w", binaries[0], err)
	}
	meta := stamp(info)
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return Result{}, fmt.Errorf("CA certificates: %w (Debian's ca-certificates package provides them)", err)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		return Result{}, fmt.Errorf("LICENSE: %w", err)
	}
	layerTar, err := rootfs(meta.created, bins, ca, license)
	if err != nil {
		return Result{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return Result{}, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return Result{}, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":    "tidemark",
		"org.opencontainers.image.version":  meta.version,
		"org.opencontainers.image.revision": meta.revision,
		"org.opencontainers.image.created":  meta.created.Format(time.RFC3339),
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Result{}, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = meta.arch, "linux"
	cf.Created = v1.Time{Time: meta.created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint: []string{"/usr/local/bin/" + binaries[0]},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + caBundle},
		WorkingDir: "/home/" + user,
		Labels:     labels,
		ExposedPorts: map[string]struct{}{
			"8080/tcp": {},
		},
	}
	cf.History = []v1.History{{Created: cf.Created, CreatedBy: "tools/image", Comment: "tidemark " + meta.version}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return Result{}, err
	}
	ref := "tidemark:" + tagOf(meta.version)
	digest, err := writeArchive(out, img, ref, meta.arch, meta.created)
	if err != nil {
		return Result{}, err
	}
	return Result{Ref: ref, Version: meta.version, Digest: digest}, nil
}

type buildMeta struct {
	version, revision, arch string
	created                 time.Time
}

// stamp reads the version, commit and commit time the go command stamped into
// a binary. A build outside a repository has neither: its time is the epoch,
// so that it is still reproducible.
func stamp(info *buildinfo.BuildInfo) buildMeta {
	m := buildMeta{version: info.Main.Version, revision: "unknown", arch: "amd64", created: time.Unix(0, 0).UTC()}
	for _, s := range info.Settings {
		switch s.Key {
		case "GOARCH": // the architecture the binaries were built for
			m.arch = s.Value
		case "vcs.revision":
			m.revision = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				m.created = t.UTC()
			}
		}
	}
	if m.version == "" {
		m.version = "(devel)"
	}
	return m
}

// tagOf makes a version a valid tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func tagOf(version string) string {
	b := []byte(version)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

type entry struct {
	name string
	mode int64
	uid  int
	body []byte // nil for a directory
}

// rootfs is the image's one layer, as an uncompressed tar.
func rootfs(mtime time.Time, bins map[string][]byte, ca, license []byte) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", user, uid, uid, user, user)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, uid)
	entries := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "home/", mode: 0o755},
		{name: "home/" + user + "/", mode: 0o755, uid: uid},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: "usr/share/", mode: 0o755},
		{name: "usr/share/doc/", mode: 0o755},
		{name: "usr/share/doc/tidemark/", mode: 0o755},
		{name: "usr/share/doc/tidemark/LICENSE", mode: 0o644, body: license},
	}
	for name, b := range bins {
		entries = append(entries, entry{name: "usr/local/bin/" + name, mode: 0o755, body: b})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime, Format: tar.FormatPAX}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeArchive writes img as an OCI image layout in a tar: oci-layout,
// index.json naming the image ref, and the blobs.
func writeArchive(out string, img v1.Image, ref, arch string, mtime time.Time) (v1.Hash, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, err
	}
	blobs := map[string][]byte{digest.Hex: manifest, configName.Hex: config}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
		blobs[d.Hex] = b
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   types.OCIManifestSchema1,
			Digest:      digest,
			Size:        int64(len(manifest)),
			Platform:    &v1.Platform{Architecture: arch, OS: "linux"},
			Annotations: map[string]string{"org.opencontainers.image.ref.name": ref},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return v1.Hash{}, err
	}
	files := []struct {
		name string
		body []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
	}
	hexes := make([]string, 0, len(blobs))
	for h := range blobs {
		hexes = append(hexes, h)
	}
	sort.Strings(hexes)
	for _, h := range hexes {
		files = append(files, struct {
			name string
			body []byte
		}{"blobs/sha256/" + h, blobs[h]})
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return v1.Hash{}, err
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".image-*")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.Remove(f.Name())
	tw := tar.NewWriter(f)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return v1.Hash{}, err
		}
	}
	for _, file := range files {
		h := &tar.Header{Name: file.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(file.body)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return v1.Hash{}, err
		}
		if _, err := tw.Write(file.body); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		return v1.Hash{}, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return v1.Hash{}, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return v1.Hash{}, err
	}
	return digest, nil
}
