package bitsprov

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSetupJob: the steps after CreateJob, for a caller that created the
// job itself. Resuming, the files the job holds already (Windows paths
// compared without case) are not added again; a failed step is a
// *SetupError and the job is not cancelled, whatever
// CancelOnSetupFailure says.
func TestSetupJob(t *testing.T) {
	held := FileSpec{RemoteURL: "https://server01/dir/a.bin", LocalFile: `C:\DL\A.BIN`} // jobXML's file
	other := FileSpec{RemoteURL: "https://server01/dir/b.bin", LocalFile: `C:\dl\b.bin`}
	pr := PriorityLow
	tests := []struct {
		name      string
		o         CreateJobOptions
		resuming  bool
		refuseAdd bool
		want      []string // methods sent, in order
		wantErr   string
	}{
		{name: "fresh", o: CreateJobOptions{ExtraFiles: []FileSpec{held, other}},
			want: []string{"AddFile " + held.RemoteURL, "AddFile " + other.RemoteURL, "SetJobState"}},
		{name: "resuming skips held files", o: CreateJobOptions{ExtraFiles: []FileSpec{held, other}}, resuming: true,
			want: []string{"Get", "AddFile " + other.RemoteURL, "SetJobState"}},
		{name: "resuming without extra files: only the Put reads the job", o: CreateJobOptions{Priority: &pr, Suspended: true}, resuming: true,
			want: []string{"Get", "Put"}},
		{name: "failed step, not cancelled", o: CreateJobOptions{ExtraFiles: []FileSpec{other}, CancelOnSetupFailure: true}, refuseAdd: true,
			want:    []string{"AddFile " + other.RemoteURL},
			wantErr: "srv1:5985: CreateJob: job " + testJobID + " was created but AddFile failed (job left on the host): srv1:5985: AddFile on " + testJobID + ": BG_E_INVALID_STATE (0x80200002): action not allowed in the current job state"},
		{name: "bad options send nothing", o: CreateJobOptions{Type: TypeUpload, ExtraFiles: []FileSpec{other}},
			wantErr: "bitsprov: SetupJob: an upload job holds exactly one file (BG_E_TOO_MANY_FILES)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := okHost()
			ok := h.reply
			h.reply = func(c call) (int, string, string) {
				if tt.refuseAdd && strings.HasSuffix(c.Action, "/AddFile") {
					return 200, c.Action + "Response", output("AddFile", "ReturnValue", "2149580802")
				}
				return ok(c)
			}
			err := h.client().SetupJob(context.Background(), testJobID, tt.o, tt.resuming)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.refuseAdd {
				var se *SetupError
				if !errors.As(err, &se) || se.Step != "AddFile" || se.Cancelled || se.CancelErr != nil {
					t.Errorf("err = %#v, want a *SetupError for AddFile, not cancelled", err)
				}
			}
			var got []string
			for _, c := range h.calls {
				m := c.Action[strings.LastIndex(c.Action, "/")+1:]
				if m == "AddFile" {
					// The remoteUrl parameter names which file.
					i := strings.Index(c.Body, "<p:remoteUrl>") + len("<p:remoteUrl>")
					m += " " + c.Body[i:i+strings.Index(c.Body[i:], "<")]
				}
				got = append(got, m)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}
