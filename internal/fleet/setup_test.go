package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// TestTransferSetupRepeatSafe: a fleet job is set up by bitsprov's
// SetupJob, with its guards. An AddFile whose reply is cut short (the
// host added the file; we cannot know) is checked against the job and
// not failed or sent twice; a run killed right after an AddFile, resumed,
// does not add the file again. Either way the job ends acknowledged
// holding each file once.
func TestTransferSetupRepeatSafe(t *testing.T) {
	const addFileAction = bitsprov.ResourceURI + "/AddFile"
	for _, tc := range []struct {
		name string
		// runs is how many runs it takes; before the first, arrange is called.
		arrange func(f *simFleet) func(cancel func(), tr transport.Transport) transport.Transport
		runs    int
	}{
		{"AddFile reply lost", func(f *simFleet) func(func(), transport.Transport) transport.Transport {
			f.hosts[0].Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate, Action: addFileAction}, 1)
			return nil
		}, 1},
		{"killed after AddFile, resumed", func(f *simFleet) func(func(), transport.Transport) transport.Transport {
			var fired atomic.Bool
			return func(cancel func(), tr transport.Transport) transport.Transport {
				return killAfter{next: tr, match: "AddFile_INPUT", cancel: cancel, fired: &fired}
			}
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSimFleet(t, 1)
			led, _ := openTestLedger(t)
			dst := t.TempDir()
			url := f.hosts[0].FilesURL
			specs := []JobSpec{{Opts: bitsprov.CreateJobOptions{DisplayName: "two", RemoteURL: url + "/a.bin", LocalFile: filepath.Join(dst, "a.bin"),
				ExtraFiles: []bitsprov.FileSpec{{RemoteURL: url + "/b.bin", LocalFile: filepath.Join(dst, "b.bin")}}, CancelOnSetupFailure: true}}}
			fp := Fingerprint("transfer", specs)
			wrap := tc.arrange(f)
			var res []JobResult
			var err error
			for i := range tc.runs {
				run, berr := led.BeginRun("transfer", fp, "", i > 0)
				if berr != nil {
					t.Fatal(berr)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				cn := *f.cn
				if wrap != nil && i == 0 {
					inner := cn.Wrap
					cn.Wrap = func(h string, tr transport.Transport) transport.Transport { return wrap(cancel, inner(h, tr)) }
				}
				hs, herr := ParseHost(f.hosts[0].URL)
				if herr != nil {
					t.Fatal(herr)
				}
				p := NewPool([]Host{hs}, &cn)
				p.Run(ctx, Options{Concurrency: 1}, func(hctx context.Context, c *Conn) error {
					tr := &Transfer{Specs: specs, Ledger: led, Run: run,
						Policy: bitsprov.Policy{Interval: 20 * time.Millisecond, Timeout: 20 * time.Second}}
					res, err = tr.Host(hctx, c)
					return err
				})
				p.Close()
				cancel()
				if i < tc.runs-1 && (len(res) != 1 || res[0].Step != StepCreated) {
					t.Fatalf("run %d: want the job left created, got %+v", i+1, res)
				}
			}
			if err != nil || len(res) != 1 {
				t.Fatalf("transfer: %v, %+v", err, res)
			}
			r := res[0]
			if r.Step != StepAcknowledged || r.Outcome == nil || r.Outcome.Action != bitsprov.ResultCompleted || r.Job == nil {
				t.Fatalf("result %+v", r)
			}
			var files []string
			for _, jf := range r.Job.Files {
				files = append(files, fmt.Sprintf("%s -> %s", jf.RemoteURL, jf.LocalFile))
			}
			want := []string{url + "/a.bin -> " + filepath.Join(dst, "a.bin"), url + "/b.bin -> " + filepath.Join(dst, "b.bin")}
			if d := cmp.Diff(want, files); d != "" {
				t.Errorf("job's files (-want +got):\n%s", d)
			}
			if n := f.count(createAction); n != 1 {
				t.Errorf("%d CreateJob calls, want 1", n)
			}
			for name, size := range map[string]int64{"a.bin": 20000, "b.bin": 300} {
				if st, err := os.Stat(filepath.Join(dst, name)); err != nil || st.Size() != size {
					t.Errorf("%s: %v %v", name, st, err)
				}
			}
		})
	}
}
