package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// The image, built twice from this checkout, is the same to the byte; its
// root filesystem, unpacked and entered with chroot as the image's user, with
// no time-zone files anywhere in it, migrates an empty database, serves
// /readyz and settles a business date, all with the image's own binaries.
func TestImageBuildsReproduciblyAndRuns(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	ra, err := Build(root, a)
	require.NoError(t, err)
	rb, err := Build(root, b)
	require.NoError(t, err)
	require.Equal(t, ra.Digest, rb.Digest, "two builds of one checkout give one digest")
	ba, err := os.ReadFile(a)
	require.NoError(t, err)
	bb, err := os.ReadFile(b)
	require.NoError(t, err)
	require.True(t, bytes.Equal(ba, bb), "two builds of one checkout give the same archive")
	if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
		require.NotEqual(t, "(devel)", ra.Version, "a build from a repository carries its version")
	}

	// The archive is an OCI image layout that go-containerregistry reads.
	layoutDir := filepath.Join(dir, "layout")
	untar(t, bytes.NewReader(ba), layoutDir)
	idx, err := layout.ImageIndexFromPath(layoutDir)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	require.Equal(t, ra.Ref, im.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	img, err := idx.Image(ra.Digest)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "65532:65532", cf.Config.User, "not root")
	require.Equal(t, []string{"/usr/local/bin/worker"}, cf.Config.Entrypoint)
	require.Equal(t, ra.Version, cf.Config.Labels["org.opencontainers.image.version"])
	require.Equal(t, "Apache-2.0", cf.Config.Labels["org.opencontainers.image.licenses"])
	require.Equal(t, runtime.GOARCH, cf.Architecture, "the binaries' architecture")

	rootfs := filepath.Join(dir, "rootfs")
	rc := mutate.Extract(img)
	untar(t, rc, rootfs)
	rc.Close()
	require.NoError(t, os.Chmod(rootfs, 0o755))
	for _, p := range []string{"usr/share/zoneinfo", "usr/lib/go/lib/time", "etc/localtime"} {
		_, err := os.Stat(filepath.Join(rootfs, p))
		require.True(t, os.IsNotExist(err), "%s must not be in the image: the binaries carry their zones", p)
	}
	for _, p := range []string{"usr/local/bin/worker", "usr/local/bin/enqueue", "etc/ssl/certs/ca-certificates.crt", "usr/share/doc/tidemark/LICENSE"} {
		_, err := os.Stat(filepath.Join(rootfs, p))
		require.NoError(t, err, p)
	}

	dbURL := testkit.EmptyDatabaseURL(t)
	env := []string{"DATABASE_URL=" + dbURL, "BATCH_TZ=Asia/Seoul", "REDIS_URL=" + testredis.URL(), "PERIODIC_JOBS=false"}

	out, err := inImage(rootfs, env, "/usr/local/bin/worker", "migrate").CombinedOutput()
	require.NoError(t, err, "worker migrate in the image:\n%s", out)

	addr := freeAddr(t)
	worker := inImage(rootfs, append(env, "HTTP_ADDR="+addr), "/usr/local/bin/worker")
	var workerOut bytes.Buffer
	worker.Stdout, worker.Stderr = &workerOut, &workerOut
	require.NoError(t, worker.Start())
	t.Cleanup(func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
		if t.Failed() {
			t.Logf("worker in the image:\n%s", workerOut.String())
		}
	})
	testkit.WaitFor(t, 30*time.Second, "the image's worker to answer /readyz", func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})

	const date = "2026-12-01"
	for _, args := range [][]string{
		{"demo-ledger", "--rows", "300", "--members", "30", "--date", date},
		{"settlement", "--date", date},
		{"wait", "--timeout", "1m"},
	} {
		out, err := inImage(rootfs, env, "/usr/local/bin/enqueue", args...).CombinedOutput()
		require.NoError(t, err, "enqueue %s in the image:\n%s", args[0], out)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer c.Close(ctx)
	var settled int64
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM point_ledger WHERE processed_on = $1::date`, date).Scan(&settled))
	require.EqualValues(t, 300, settled, "the image's worker settled every due row")
}

// inImage is a command run in rootfs as the image's user: chroot as root,
// or in a user namespace of its own otherwise.
func inImage(rootfs string, env []string, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin", "HOME=/home/" + user}, env...)
	cmd.Dir = "/"
	attr := &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if os.Geteuid() != 0 {
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: os.Getgid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	return cmd
}

// untar writes the tar stream r under dir, as root would: modes and owners
// as the archive gives them.
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		name := filepath.Clean(h.Name)
		require.False(t, strings.HasPrefix(name, "..") || filepath.IsAbs(name), "entry %q leaves the archive", h.Name)
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		default:
			t.Fatalf("entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
		require.NoError(t, os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)))
		if os.Geteuid() == 0 {
			require.NoError(t, os.Lchown(p, h.Uid, h.Gid))
		}
	}
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
