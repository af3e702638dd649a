package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/authline/authline/server/servertest"
)

// TestShellPTY drives the authline binary's shell through a real terminal
// (a pty), as a person would: typing, Tab, the up arrow, password prompts,
// and checks what the terminal shows.
func TestShellPTY(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no pty on Windows")
	}
	if testing.Short() {
		t.Skip("builds the authline binary")
	}
	bin := buildAuthline(t)
	srv := servertest.Start(t, servertest.Options{})
	config := t.TempDir()
	const password = "kitten-orbit-42"
	anon, carol := srv.Addr+"> ", "carol@"+srv.Addr+"> "

	term := startPTY(t, bin, config, "--server", srv.Addr, "shell")
	term.waitFor(t, anon)

	// register and login: password prompts that do not echo.
	term.send(t, "register carol\r")
	term.waitFor(t, "Password: ")
	term.send(t, password+"\r")
	term.waitFor(t, "Repeat password: ")
	term.send(t, password+"\r")
	term.waitFor(t, "registered carol (role user)")
	term.send(t, "login carol\r")
	term.waitFor(t, "Password: ")
	term.send(t, password+"\r")
	term.waitFor(t, "logged in as carol (role user)")
	term.waitFor(t, carol) // the prompt says who

	// Tab completes the command, then the resource.
	term.send(t, "ge\t")
	term.waitFor(t, carol+"get ")
	term.send(t, "prot\t")
	term.waitFor(t, carol+"get protected ")
	term.send(t, "\r")
	term.waitFor(t, "Hello carol, this is protected content.")

	// The up arrow recalls it.
	term.send(t, "\x1b[A")
	term.waitFor(t, carol+"get protected")
	term.send(t, "\r")
	term.waitFor(t, "Hello carol, this is protected content.")

	term.send(t, "help\r")
	term.waitFor(t, "quit, exit")
	term.send(t, "whoami\r")
	term.waitFor(t, "carol (role user, auth session)")
	term.send(t, "quit\r")
	if code := term.wait(t); code != 0 {
		t.Fatalf("shell exited %d\n%s", code, term.output())
	}

	out := term.output()
	if strings.Contains(out, password) {
		t.Fatalf("the password appeared on the terminal:\n%s", strings.Join(renderScreen(out), "\n"))
	}
	screen := renderScreen(out)
	for _, want := range []string{
		anon + "register carol",
		"Password: ", // nothing after the prompt: no echo
		"Repeat password: ",
		"registered carol (role user)",
		anon + "login carol",
		"logged in as carol (role user)",
		carol + "get protected",
		"Hello carol, this is protected content.",
		carol + "help",
		"  get RESOURCE         fetch \"protected\" or \"admin\"",
		carol + "whoami",
		"carol (role user, auth session)",
		carol + "quit",
	} {
		if !containsLine(screen, want) {
			t.Errorf("the terminal shows no line %q; it shows:\n%s", want, strings.Join(screen, "\n"))
		}
	}
	if n := countLines(screen, "Hello carol, this is protected content."); n != 2 {
		t.Errorf("protected content shown %d times, want 2 (typed, then recalled)", n)
	}

	// The history file: private, the commands, no password.
	path := filepath.Join(config, "authline", "history")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", fi.Mode().Perm())
	}
	hist, _ := os.ReadFile(path)
	wantHist := "register carol\nlogin carol\nget protected\nhelp\nwhoami\nquit\n"
	if string(hist) != wantHist {
		t.Errorf("history file:\n%s\nwant:\n%s", hist, wantHist)
	}
	if bytes.Contains(hist, []byte(password)) {
		t.Fatal("the password is in the history file")
	}

	// A new shell starts with that history: up recalls the last command.
	term = startPTY(t, bin, config, "--server", srv.Addr, "shell")
	term.waitFor(t, anon)
	term.send(t, "\x1b[A")
	term.waitFor(t, anon+"quit")
	term.send(t, "\r")
	if code := term.wait(t); code != 0 {
		t.Fatalf("second shell exited %d\n%s", code, term.output())
	}
}

// buildAuthline builds the authline binary (with -race when the tests run
// with it) into a temporary directory.
func buildAuthline(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "authline")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/authline/authline/cmd/authline")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ptyProcess is a command running on a pty, and what it has written.
type ptyProcess struct {
	cmd  *exec.Cmd
	ptmx *os.File
	read chan struct{} // closed when the reading goroutine is done

	mu   sync.Mutex
	out  bytes.Buffer
	seen int // waitFor looks for text after this offset
	code int
	done bool
}

func startPTY(t *testing.T, bin, config string, args ...string) *ptyProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+config, "HOME="+config, "AUTHLINE_SERVER=", "TERM=xterm")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Skipf("cannot start on a pty: %v", err)
	}
	p := &ptyProcess{cmd: cmd, ptmx: ptmx, read: make(chan struct{})}
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO once the process has ended
			}
		}
	}()
	t.Cleanup(func() {
		if !p.done {
			cmd.Process.Kill()
			p.wait(t)
		}
	})
	return p
}

func (p *ptyProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *ptyProcess) send(t *testing.T, s string) {
	t.Helper()
	if _, err := p.ptmx.Write([]byte(s)); err != nil {
		t.Fatalf("typing %q: %v", s, err)
	}
}

// waitFor waits until the terminal shows s after what earlier waits
// found, and moves past it.
func (p *ptyProcess) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.mu.Lock()
		i := strings.Index(p.out.String()[p.seen:], s)
		if i >= 0 {
			p.seen += i + len(s)
		}
		p.mu.Unlock()
		if i >= 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %q; the terminal shows:\n%s", s, strings.Join(renderScreen(p.output()), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *ptyProcess) wait(t *testing.T) int {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		err = <-exited
		t.Errorf("the process did not exit; the terminal shows:\n%s", strings.Join(renderScreen(p.output()), "\n"))
	}
	p.ptmx.Close()
	<-p.read
	p.done = true
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return 0
}

// renderScreen replays terminal output onto lines of text, as a terminal
// would show them: carriage returns, backspaces, cursor moves and erasing
// (the escape sequences readline uses) are applied; colours are dropped.
func renderScreen(out string) []string {
	lines := [][]rune{{}}
	row, col := 0, 0
	put := func(r rune) {
		for len(lines[row]) < col {
			lines[row] = append(lines[row], ' ')
		}
		if col < len(lines[row]) {
			lines[row][col] = r
		} else {
			lines[row] = append(lines[row], r)
		}
		col++
	}
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\r':
			col = 0
		case r == '\n':
			row++
			if row == len(lines) {
				lines = append(lines, []rune{})
			}
		case r == '\b':
			if col > 0 {
				col--
			}
		case r == 0x1b && i+1 < len(rs) && rs[i+1] == '[':
			// CSI: parameters, then a final byte.
			j := i + 2
			for j < len(rs) && (rs[j] < 0x40 || rs[j] > 0x7e) {
				j++
			}
			if j == len(rs) {
				i = j
				break
			}
			n, err := strconv.Atoi(string(rs[i+2 : j]))
			if err != nil {
				n = 0
			}
			switch rs[j] {
			case 'K': // erase in line
				if n == 2 {
					lines[row] = lines[row][:0]
				} else if col < len(lines[row]) {
					lines[row] = lines[row][:col]
				}
			case 'J': // erase below
				if col < len(lines[row]) {
					lines[row] = lines[row][:col]
				}
				lines = lines[:row+1]
			case 'A':
				row = max(0, row-max(n, 1))
			case 'B':
				row += max(n, 1)
				for row >= len(lines) {
					lines = append(lines, []rune{})
				}
			case 'C':
				col += max(n, 1)
			case 'D':
				col = max(0, col-max(n, 1))
			}
			i = j
		case r == 0x1b || r == 0 || r == '\a':
		default:
			put(r)
		}
	}
	screen := make([]string, len(lines))
	for i, l := range lines {
		screen[i] = strings.TrimRight(string(l), " ")
	}
	return screen
}

func containsLine(screen []string, want string) bool {
	return countLines(screen, want) > 0
}

func countLines(screen []string, want string) int {
	n := 0
	want = strings.TrimRight(want, " ")
	for _, l := range screen {
		if l == want {
			n++
		}
	}
	return n
}

func TestRenderScreen(t *testing.T) {
	got := renderScreen("\x1b[J\x1b[2K\ra> \b\x1b[J\x1b[2K\ra> g\x1b[J\x1b[2K\ra> get\r\nok\r\nPassword: \r\nx\x1b[1mbold\x1b[0m\b\bLD")
	want := []string{"a> get", "ok", "Password:", "xboLD"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("renderScreen = %q, want %q", got, want)
	}
}
