// Package testpgbouncer starts a private PgBouncer for tests (and the
// benchmarks) that run tidemark through a pooler: Debian's pgbouncer (scripts/services.sh installs
// it) in transaction mode, on a free loopback port, in front of a Postgres
// server the test names, run as a non-root OS user (pgbouncer refuses to run
// as root), stopped when the test ends.
//
// Through it, a server connection serves one transaction of one client at a
// time, and the session timeouts tidemark requires are the database's own
// settings (SetSession), as an operator sets them on the role or database.
package testpgbouncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testpg"
)

// PoolSize is the pooler's server connections per database and user
// (default_pool_size), what a production pooler would give a deployment.
const PoolSize = 20

// Server is a running private pgbouncer.
type Server struct {
	port int
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Start runs pgbouncer in transaction mode in front of the server of
// upstream (a postgres:// URL; any database on it is served under its own
// name), and stops it when the test ends.
func Start(t testing.TB, upstream string) *Server {
	t.Helper()
	s, err := Launch(upstream, t.TempDir(), PoolSize)
	if err != nil {
		t.Fatalf("testpgbouncer: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("testpgbouncer: log:\n%s", s.Log())
		}
	})
	return s
}

// Launch is Start for a program (cmd/bench): pgbouncer keeps its files in
// dir, opens at most poolSize server connections per database and user,
// and the caller stops it with Stop.
func Launch(upstream, dir string, poolSize int) (*Server, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
		if _, err := os.Stat(bin); err != nil {
			return nil, errors.New("no pgbouncer (scripts/services.sh installs Debian's pgbouncer)")
		}
	}
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	s := &Server{done: make(chan struct{})}
	if s.port, err = testpg.FreePort(); err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = transaction
max_client_conn = 2000
default_pool_size = %d
reserve_pool_size = 0
server_login_retry = 1
query_wait_timeout = 60
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`, host, port, s.port, filepath.Join(dir, "userlist.txt"), poolSize)
	// auth_type = trust still needs the user in auth_file.
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return nil, err
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", "postgres").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("useradd postgres: %v\n%s", err, out)
			}
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		args = append([]string{"-u", "postgres"}, args...)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("pgbouncer exited:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("not listening on %s after 10s:\n%s", s.Addr(), s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills pgbouncer and waits for it to exit.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Addr is the pooler's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is direct, a postgres:// URL to the upstream server, with the pooler
// in its place: the same database, user and options.
func (s *Server) URL(direct string) string {
	u, err := url.Parse(direct)
	if err != nil {
		panic(fmt.Sprintf("testpgbouncer: bad URL: %v", err))
	}
	u.Host = s.Addr()
	return u.String()
}

// Log is what pgbouncer wrote so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

// SetSession makes sess the session timeouts of every new session on the
// database of direct (ALTER DATABASE … SET), as an operator does for a
// pooler's server connections; a worker behind the pooler checks them at
// start.
func SetSession(t testing.TB, direct string, sess config.Session) {
	t.Helper()
	if err := ApplySession(direct, sess); err != nil {
		t.Fatalf("testpgbouncer: %v", err)
	}
}

// ApplySession is SetSession for a program (cmd/bench).
func ApplySession(direct string, sess config.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, direct)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	var db string
	if err := c.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return err
	}
	var errs []error
	for k, v := range sess.RuntimeParams() {
		_, err := c.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s SET %s = '%sms'`, pgx.Identifier{db}.Sanitize(), k, v))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
