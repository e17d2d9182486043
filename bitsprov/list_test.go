package bitsprov

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// fastRetry is a three-attempt policy with pauses too short to matter.
var fastRetry = wsman.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}

const (
	job2 = "{00000000-0000-0000-0000-000000000002}"
	// firstPage is an optimized EnumerateResponse with one job and more
	// to Pull.
	firstPage = `<n:EnumerateResponse xmlns:n="` + wsman.NsEnumeration + `"><n:EnumerationContext>ctx-1</n:EnumerationContext>` +
		`<w:Items>` + "%JOB1%" + `</w:Items></n:EnumerateResponse>`
)

func pullPage() string {
	return `<n:PullResponse xmlns:n="` + wsman.NsEnumeration + `"><n:Items>` + strings.Replace(jobXML("2", "2"), testJobID, job2, 1) +
		`</n:Items><n:EndOfSequence/></n:PullResponse>`
}

// TestJobsRetriesAddUp: wsman repeats an Enumerate within its policy and
// Jobs does not repeat it again (3 attempts in all for Attempts 3, not 9);
// a Pull whose reply was garbled (the cursor moved, wsman cannot repeat
// it) starts the listing over, within the same Attempts.
func TestJobsRetriesAddUp(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		// pullFails is how many Pulls fail before one succeeds (-1: all).
		pullFails   int
		enumRefused bool
		enum500     bool
		wantCalls   []string
		wantJobs    int
		wantErr     string
	}{
		{
			name: "enumerate refused", enumRefused: true,
			wantCalls: []string{"Enumerate", "Enumerate", "Enumerate"},
			wantErr:   "srv1:5985: Enumerate: post to srv1:5985: dial tcp: connect: connection refused",
		},
		{
			// A bare 500 is Windows refusing the message before dispatch:
			// the same message gets the same answer, so it is sent once.
			name: "enumerate empty 500", enum500: true,
			wantCalls: []string{"Enumerate"},
			wantErr:   "srv1:5985: Enumerate: HTTP 500",
		},
		{
			name: "one pull lost", pullFails: 1,
			wantCalls: []string{"Enumerate", "Pull", "Enumerate", "Pull"},
			wantJobs:  2,
		},
		{
			name: "every pull lost", pullFails: -1,
			wantCalls: []string{"Enumerate", "Pull", "Enumerate", "Pull", "Enumerate", "Pull"},
			wantErr:   "srv1:5985: Enumerate: Pull: HTTP 200 (protocol violation: not a SOAP envelope: no root element): garbled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []string
			pulls := 0
			h := &fakeHost{}
			h.reply = func(c call) (int, string, string) {
				switch c.Action {
				case wsman.ActionEnumerate:
					if tt.enum500 {
						return 500, "", ""
					}
					return 200, wsman.ActionEnumerateResp, strings.Replace(firstPage, "%JOB1%", jobXML("2", "2"), 1)
				case wsman.ActionRelease:
					return 200, wsman.ActionReleaseResponse, ""
				case wsman.ActionPull:
					pulls++
					if tt.pullFails < 0 || pulls <= tt.pullFails {
						return 200, "", "garbled"
					}
					return 200, wsman.ActionPullResponse, pullPage()
				}
				t.Errorf("unexpected %s", c.Action)
				return 500, "", ""
			}
			w := wsman.NewClient("http://srv1:5985/wsman", transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
				body := string(req.Body)
				op := "Enumerate"
				switch {
				case strings.Contains(body, wsman.ActionPull):
					op = "Pull"
				case strings.Contains(body, wsman.ActionRelease):
					// Whether wsman releases a context after a failed
					// Pull is its business; only the listings count.
					op = ""
				}
				if op != "" {
					mu.Lock()
					calls = append(calls, op)
					mu.Unlock()
				}
				if tt.enumRefused {
					return nil, &refusedErr{err: refused}
				}
				resp, err := h.roundTrip(ctx, req)
				if err == nil && string(resp.Body) != "" && strings.Contains(string(resp.Body), "<s:Body>garbled</s:Body>") {
					resp.Body = []byte("garbled")
				}
				if err == nil && resp.StatusCode == 500 {
					resp.Body = nil
				}
				return resp, err
			}))
			w.Retry = fastRetry
			jobs, err := NewClient(w).Jobs(context.Background(), JobFilter{})
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr || len(jobs) != tt.wantJobs {
				t.Errorf("Jobs = %d jobs, %q\nwant %d jobs, %q", len(jobs), gotErr, tt.wantJobs, tt.wantErr)
			}
		})
	}
}

// refusedErr is a dial failure as the transports report it: nothing was
// sent, and the host is named once.
type refusedErr struct{ err error }

func (e *refusedErr) Error() string {
	return "post to srv1:5985: dial tcp: connect: connection refused"
}
func (e *refusedErr) Unwrap() []error { return []error{e.err, transport.ErrNotSent} }

// TestErrorMessages: each layer adds only what the one below lacks; the
// host and the operation appear once.
func TestErrorMessages(t *testing.T) {
	missing := `<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidParameter</s:Value></s:Subcode></s:Code>` +
		`<s:Reason><s:Text xml:lang="en-US">Invalid namespace</s:Text></s:Reason><s:Detail>` +
		`<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2147749902" Machine="srv1"><f:Message>Invalid namespace</f:Message></f:WSManFault></s:Detail></s:Fault>`
	tests := []struct {
		name string
		rt   func(h *fakeHost, ctx context.Context, req *transport.Request) (*transport.Response, error)
		call func(c *Client) error
		want string
	}{
		{
			name: "Get, empty 500",
			rt: func(*fakeHost, context.Context, *transport.Request) (*transport.Response, error) {
				return &transport.Response{StatusCode: 500}, nil
			},
			call: func(c *Client) error { _, err := c.Job(context.Background(), testJobID); return err },
			want: "srv1:5985: Get on " + testJobID + ": HTTP 500",
		},
		{
			name: "SetJobState, connection closed after sending",
			rt: func(*fakeHost, context.Context, *transport.Request) (*transport.Response, error) {
				return nil, &closedErr{}
			},
			call: func(c *Client) error {
				_, err := c.SetJobState(context.Background(), testJobID, ActionResume)
				return err
			},
			want: "srv1:5985: SetJobState on " + testJobID + ": post to srv1:5985: EOF (outcome unknown: the host may have carried out the request)",
		},
		{
			name: "provider missing",
			rt: func(h *fakeHost, ctx context.Context, req *transport.Request) (*transport.Response, error) {
				h.reply = func(call) (int, string, string) { return 500, wsman.ActionFaultWSMan, missing }
				return h.roundTrip(ctx, req)
			},
			call: func(c *Client) error { return c.Suspend(context.Background(), testJobID) },
			want: "srv1:5985: SetJobState on " + testJobID + ": " + ErrProviderMissing.Error() + ": WS-Management fault InvalidParameter (code 2147749902 = 0x8004100E): Invalid namespace",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{}
			w := wsman.NewClient("http://srv1:5985/wsman", transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
				return tt.rt(h, ctx, req)
			}))
			w.Retry = wsman.NoRetry
			err := tt.call(NewClient(w))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}

// closedErr is a connection the host closed after the request went out.
type closedErr struct{}

func (*closedErr) Error() string { return "post to srv1:5985: EOF" }
func (*closedErr) Unwrap() error { return io.EOF }
