package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// IOStreams are the standard streams a command uses, with what is known about
// them. Commands never touch os.Stdin/Stdout/Stderr directly, so tests run
// them in-process with buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// StdinTTY reports whether In is a terminal: only then may a command
	// prompt for a password.
	StdinTTY bool
	// StderrTTY reports whether ErrOut is a terminal: only then are
	// progress lines drawn.
	StderrTTY bool

	// ReadSecret prints prompt on ErrOut and reads one line from the
	// terminal without echo. It is only called when StdinTTY is true.
	ReadSecret func(prompt string) (string, error)

	mu sync.Mutex // serialises writes from concurrent hosts
}

// System returns the process's streams.
func System() *IOStreams {
	s := &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		StdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		StderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	s.ReadSecret = func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password from the terminal: %w", err)
		}
		return string(b), nil
	}
	return s
}

// Test returns streams backed by buffers: stdin, stdout and stderr. No
// stream is a terminal.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := new(bytes.Buffer), new(bytes.Buffer), new(bytes.Buffer)
	s := &IOStreams{In: in, Out: out, ErrOut: errOut}
	s.ReadSecret = func(string) (string, error) {
		return "", errors.New("no terminal")
	}
	return s, in, out, errOut
}

// Printf writes to Out, whole, even when several hosts print at once.
func (s *IOStreams) Printf(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.Out, format, a...)
}

// Write writes b to Out under the lock.
func (s *IOStreams) Write(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.Out.Write(b)
}

// Warnf writes one line to ErrOut under the lock.
func (s *IOStreams) Warnf(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(s.ErrOut, msg)
}

// lockedWriter serialises writes to w with the streams' lock, for slog.
type lockedWriter struct {
	s *IOStreams
	w io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.w.Write(b)
}
