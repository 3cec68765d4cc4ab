// Package testbin builds tidemark's real binaries once per test process and
// runs them as child processes, for end-to-end tests (graceful stop, SIGKILL,
// several workers on one database).
package testbin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Build compiles ./cmd/<name> (once per test process) and returns its path.
func Build(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "tidemark-bin-")
		if err != nil {
			t.Fatalf("testbin: %v", err)
		}
		buildDir = d
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbin: go build ./cmd/%s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Proc is a running binary.
type Proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	// Addr is the worker's HTTP address once StartWorker returned.
	Addr string
}

// Start runs the binary at path with env added to the environment. The
// process is killed when the test ends if it is still running.
func Start(t testing.TB, path string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("testbin: pipe: %v", err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testbin: start %s: %v", path, err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(path), p.Output())
		}
	})
	return p
}

var httpAddrRE = regexp.MustCompile(`msg="worker started" http=(\S+)`)

// StartWorker starts the worker binary with env (HTTP_ADDR defaults to a free
// port) and waits until it serves /readyz.
func StartWorker(t testing.TB, env ...string) *Proc {
	t.Helper()
	hasAddr, hasBudgetKey, partner := false, false, ""
	for _, e := range env {
		hasAddr = hasAddr || strings.HasPrefix(e, "HTTP_ADDR=")
		hasBudgetKey = hasBudgetKey || strings.HasPrefix(e, "ORDER_API_BUDGET_KEY=")
		if v, ok := strings.CutPrefix(e, "ORDER_API_URL="); ok {
			partner = v
		}
	}
	if !hasAddr {
		env = append(env, "HTTP_ADDR=127.0.0.1:0")
	}
	// The budget toward a partner is shared by the workers that call it,
	// in the one Redis all tests use: one key prefix per simulated partner,
	// so that one test's 429s or open breaker hold back no other test.
	if !hasBudgetKey {
		env = append(env, "ORDER_API_BUDGET_KEY=test:partner:"+strings.NewReplacer("http://", "", "https://", "", "/", "_").Replace(partner))
	}
	p := Start(t, Build(t, "worker"), env)
	deadline := time.Now().Add(30 * time.Second)
	for p.Addr == "" {
		if m := httpAddrRE.FindStringSubmatch(p.Output()); m != nil {
			p.Addr = m[1]
			break
		}
		select {
		case <-p.done:
			t.Fatalf("testbin: worker exited before it was ready: %v\n%s", p.err, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testbin: worker not ready after 30s:\n%s", p.Output())
		}
	}
	resp, err := http.Get("http://" + p.Addr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("testbin: worker /readyz: %v %v", err, resp)
	}
	resp.Body.Close()
	return p
}

// Output is everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Stop sends SIGTERM and waits for the process to exit, returning its error.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Freeze stops the process with SIGSTOP, as a VM pause, a long GC pause or a
// debugger would: it keeps its connections and its state and runs nothing
// until Thaw. It returns once the kernel reports the process stopped.
func (p *Proc) Freeze() error {
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testbin: SIGSTOP: %w", err)
	}
	return p.waitState(true)
}

// Thaw resumes a frozen process with SIGCONT and returns once the kernel
// reports it running again.
func (p *Proc) Thaw() error {
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("testbin: SIGCONT: %w", err)
	}
	return p.waitState(false)
}

// waitState waits until the process is stopped (or no longer stopped), as
// /proc/<pid>/stat says, for at most 5 s.
func (p *Proc) waitState(stopped bool) error {
	path := fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("testbin: process state: %w", err)
		}
		// The state follows the command name, which is in parentheses.
		st := b[bytes.LastIndexByte(b, ')')+2]
		if (st == 'T') == stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbin: process %d in state %c after 5s", p.cmd.Process.Pid, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// Wait waits for the process to exit on its own.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("testbin: process still running after %s", timeout)
	}
}

// Run runs the binary at path to completion and returns its exit code, stdout
// and stderr.
func Run(t testing.TB, path string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), o.String(), e.String()
		}
		t.Fatalf("testbin: run %s: %v", path, err)
	}
	return 0, o.String(), e.String()
}

var thirdpartyAddrRE = regexp.MustCompile(`msg="thirdparty listening" addr=(\S+)`)

// StartThirdParty runs the simulated order API (cmd/thirdparty) on a free
// port against dbURL, with extra flags args, and returns it and its base URL.
func StartThirdParty(t testing.TB, dbURL string, args ...string) (*Proc, string) {
	t.Helper()
	small := dbURL + "&pool_max_conns=4"
	if !strings.Contains(dbURL, "?") {
		small = dbURL + "?pool_max_conns=4"
	}
	p := Start(t, Build(t, "thirdparty"), nil,
		append([]string{"--addr", "127.0.0.1:0", "--database-url", small}, args...)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := thirdpartyAddrRE.FindStringSubmatch(p.Output()); m != nil {
			return p, "http://" + m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("testbin: thirdparty exited before listening: %v\n%s", p.err, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testbin: thirdparty not listening after 30s:\n%s", p.Output())
		}
	}
}
