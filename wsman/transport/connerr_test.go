package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

func TestIsConnectionClosed(t *testing.T) {
	// net/http's errServerClosedIdle is unexported; this is its text.
	closedIdle := errors.New("http: server closed idle connection")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"EOF", fmt.Errorf("post to h:5985: %w", io.EOF), true},
		{"unexpected EOF", fmt.Errorf("read reply from h:5985: %w", io.ErrUnexpectedEOF), true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"aborted", fmt.Errorf("x: %w", syscall.ECONNABORTED), true},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, true},
		{"server closed idle connection", fmt.Errorf("post to h:5985: %w", closedIdle), true},
		{"server closed idle connection in a url.Error", &url.Error{Op: "Post", URL: "http://h:5985/wsman", Err: closedIdle}, true},
		{"refused (never connected)", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false},
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), false},
		{"other", errors.New("http: server gave HTTP response to HTTPS client"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsConnectionClosed(tc.err); got != tc.want {
				t.Errorf("IsConnectionClosed(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if got := connDead(tc.err); got != tc.want {
				t.Errorf("connDead(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
