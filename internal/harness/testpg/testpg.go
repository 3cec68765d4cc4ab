// Package testpg starts a private Postgres server for tests that crash or
// restart it: its own initdb cluster in a temporary folder, on a free
// loopback port, run by a non-root OS user (Postgres refuses to run as root).
// The shared server that other tests use is never touched.
package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/migrations"
)

// Server is a private Postgres server. Its data lives until the test ends.
type Server struct {
	bin  string
	dir  string
	port int
	as   []string // command prefix that runs a program as the server's OS user
	// URL is the tidemark database on this server, migrated to the current schema.
	URL string
}

// Start initialises a cluster, starts it, creates and migrates a database
// named tidemark, and stops the server (immediately) when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", "postgres").CombinedOutput(); err != nil {
				t.Fatalf("testpg: useradd postgres: %v\n%s", err, out)
			}
		}
		s.as = []string{"runuser", "-u", "postgres", "--"}
	}
	s.dir, err = os.MkdirTemp("", "tidemark-pg-")
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(s.dir) })
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres", s.dir).CombinedOutput(); err != nil {
			t.Fatalf("testpg: chown: %v\n%s", err, out)
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("testpg: initdb: %v\n%s", err, out)
	}
	s.port, err = FreePort()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	t.Cleanup(func() { _, _ = s.run("pg_ctl", "-D", s.data(), "stop", "-m", "immediate") })
	if err := s.Start(); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	ctx := context.Background()
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testpg: connect: %v", err)
	}
	_, err = c.Exec(ctx, `CREATE DATABASE tidemark`)
	c.Close(ctx)
	if err != nil {
		t.Fatalf("testpg: create database: %v", err)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/tidemark?sslmode=disable", s.port)
	if err := migrations.Up(s.URL); err != nil {
		t.Fatalf("testpg: migrate: %v", err)
	}
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// run runs one of the server's programs as its OS user.
func (s *Server) run(prog string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.as...), filepath.Join(s.bin, prog)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// Start starts the server and waits until it accepts connections (crash
// recovery included, after Crash).
func (s *Server) Start() error {
	// fsync off: a crash of the server process (Crash) still loses every WAL
	// record not yet written to the kernel, which is what asynchronous commit
	// risks; only a crash of the machine would need fsync, and it makes the
	// tests slow.
	opts := strings.Join([]string{
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=200", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=64MB", "-c", "log_min_messages=warning",
	}, " ")
	out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, s.Log())
	}
	return nil
}

// Crash stops the server the way a crash does (pg_ctl stop -m immediate:
// every backend is killed, nothing is flushed, the next start runs crash
// recovery). Connections fail until Start.
func (s *Server) Crash() error {
	if out, err := s.run("pg_ctl", "-D", s.data(), "-w", "stop", "-m", "immediate"); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
	return nil
}

// Log is the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

func findBin() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(matches) - 1; i >= 0; i-- { // newest version first
		dirs = append(dirs, matches[i])
	}
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb/pg_ctl found (scripts/services.sh installs Debian's postgresql)")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
