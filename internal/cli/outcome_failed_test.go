package cli

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

var (
	completeRequestRE = regexp.MustCompile(`SetJobState_INPUT[^>]*>\s*<[^>]*JobState>1<`)
	returnValueRE     = regexp.MustCompile(`(ReturnValue>)0(<)`)
)

// refuseComplete wraps the real transport: every SetJobState 1 (Complete)
// is answered with ReturnValue BG_E_INVALID_STATE (0x80200002), as a host
// does when the job changed state under us.
func refuseComplete(cfg transport.Config) (transport.Transport, error) {
	tr, err := transport.New(cfg)
	if err != nil {
		return nil, err
	}
	return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		resp, err := tr.RoundTrip(ctx, req)
		if err != nil || !completeRequestRE.Match(req.Body) {
			return resp, err
		}
		resp.Body = returnValueRE.ReplaceAll(resp.Body, []byte("${1}2149580802${2}"))
		return resp, nil
	}), nil
}

// TestCompleteRefused: a Complete the host refuses is a named outcome
// ("Failed") saying why, and the command exits 5 as for any ReturnValue
// error, on wait and transfer alike.
func TestCompleteRefused(t *testing.T) {
	h := newSimHost(t)
	base := []string{"-H", h.hostArg(), "-u", testUser, "--interval", "10ms", "--timeout", "20s"}
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"wait", func(t *testing.T) []string {
			id := createSuspended(t, h, tempPath(t, "a.bin"))
			if r := run(t, withPassword(), "resume", id, "-H", h.hostArg(), "-u", testUser); r.code != 0 {
				t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
			}
			return []string{"wait", id, "--complete"}
		}},
		{"transfer", func(t *testing.T) []string {
			return []string{"transfer", h.FilesURL + "/file.bin", tempPath(t, "b.bin")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args(t), base...)
			ios, _, out, errOut := Test()
			f := testFactory(t, ios, withPassword())
			f.NewTransport = refuseComplete
			code := Execute(context.Background(), f, args)
			if code != ExitFault {
				t.Fatalf("exit %d, want 5: %s", code, errOut.String())
			}
			var outcome string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "Outcome") {
					outcome = strings.Join(strings.Fields(l), " ")
				}
			}
			want := regexp.MustCompile(`^Outcome: Failed after \d+\.\ds: job transferred; but Complete failed: SetJobState on \{[0-9A-F-]{36}\}: BG_E_INVALID_STATE \(0x80200002\): action not allowed in the current job state$`)
			if !want.MatchString(outcome) {
				t.Errorf("outcome line %q, want it to match %s\nstdout:\n%s", outcome, want, out.String())
			}
			// The host is named once, at the start.
			wantErr := regexp.MustCompile(`^bitsremote: ` + regexp.QuoteMeta(h.hostArg()) + `: (job \{[0-9A-F-]{36}\}: job transferred; but Complete failed: )?SetJobState on \{[0-9A-F-]{36}\}: BG_E_INVALID_STATE \(0x80200002\): action not allowed in the current job state\n$`)
			if !wantErr.MatchString(errOut.String()) {
				t.Errorf("stderr %q, want it to match %s", errOut.String(), wantErr)
			}
		})
	}
}
