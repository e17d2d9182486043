package fleet

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

func TestDefaultLedgerPath(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvLedger: "/x/l.db", "XDG_STATE_HOME": "/s", "HOME": "/h"}, "/x/l.db"},
		{map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/bitsremote/ledger.db"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/bitsremote/ledger.db"},
		{map[string]string{"HOME": "/h"}, "/h/.local/state/bitsremote/ledger.db"},
	} {
		got, err := DefaultLedgerPath(func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
	if _, err := DefaultLedgerPath(func(string) string { return "" }); err == nil || err.Error() != "ledger: no state directory: set HOME, XDG_STATE_HOME or BITSREMOTE_LEDGER, or give --ledger" {
		t.Errorf("no HOME: %v", err)
	}
}

func openTestLedger(t *testing.T) (*Ledger, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state", "bitsremote", "ledger.db")
	l, err := OpenLedger(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, p
}

func TestLedgerFileModes(t *testing.T) {
	_, p := openTestLedger(t)
	for path, want := range map[string]os.FileMode{p: 0o600, filepath.Dir(p): 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
}

func TestLedgerBusy(t *testing.T) {
	_, p := openTestLedger(t)
	// Another process in the middle of a long transaction holds the lock.
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := lockWait
	lockWait = 50 * time.Millisecond
	defer func() { lockWait = old }()
	if _, err := OpenLedger(p); !errors.Is(err, ErrLedgerBusy) {
		t.Fatalf("open while locked: %v, want ErrLedgerBusy", err)
	}
}

// TestLedgerShared has two writers on one file, as two bitsremote
// processes: each holds the lock only for a transaction, so both go on
// and every record lands.
func TestLedgerShared(t *testing.T) {
	l1, p := openTestLedger(t)
	l2, err := OpenLedger(p)
	if err != nil {
		t.Fatalf("second writer: %v", err)
	}
	r1, err := l1.BeginRun("transfer", "a", "", false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l2.BeginRun("import-csv", "b", "", false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		for _, x := range []struct {
			l   *Ledger
			run string
		}{{l1, r1.ID}, {l2, r2.ID}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := x.l.Put(&Entry{RunID: x.run, Host: "h", Index: i, Step: StepIntent}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for _, r := range []*Run{r1, r2} {
		es, err := l1.Entries(r.ID)
		if err != nil || len(es) != 40 {
			t.Errorf("run %s: %d entries, %v", r.ID, len(es), err)
		}
	}
}

func TestLedgerRunsAndEntries(t *testing.T) {
	l, p := openTestLedger(t)
	clock := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	l.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	if _, err := l.BeginRun("transfer", "fp1", "", true); !errors.Is(err, ErrNoRun) {
		t.Fatalf("resume with no run: %v", err)
	}
	r1, err := l.BeginRun("transfer", "fp1", "a b", false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.BeginRun("import-csv", "fp2", "", false)
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{RunID: r1.ID, Host: "h1:5985", Index: 1, Marker: "bitsremote:m1", Step: StepIntent,
		Request: Request{DisplayName: "d", Type: "Download", Files: []FileRecord{{"http://f/a", `C:\a`}}}}
	if err := l.Put(e); err != nil {
		t.Fatal(err)
	}
	created := e.Created
	e.JobID, e.Step = "{J1}", StepCreated
	if err := l.Put(e); err != nil {
		t.Fatal(err)
	}
	if !e.Created.Equal(created) || !e.Updated.After(created) {
		t.Errorf("times: created %v updated %v", e.Created, e.Updated)
	}
	for _, x := range []*Entry{
		{RunID: r1.ID, Host: "h1:5985", Index: 0, Step: StepAcknowledged},
		{RunID: r1.ID, Host: "h0:5985", Index: 0, Step: StepResumed},
		{RunID: r2.ID, Host: "h1:5985", Index: 0, Step: StepIntent},
	} {
		if err := l.Put(x); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.HostEntries(r1.ID, "h1:5985")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Step != StepAcknowledged {
		t.Fatalf("host entries: %+v", got)
	}
	if d := cmp.Diff(e, got[1]); d != "" {
		t.Errorf("entry round trip (-want +got):\n%s", d)
	}
	all, err := l.Entries(r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, x := range all {
		order = append(order, x.Host+"/"+string(x.Step))
	}
	if d := cmp.Diff([]string{"h0:5985/resumed", "h1:5985/acknowledged", "h1:5985/created"}, order); d != "" {
		t.Errorf("entries order (-want +got):\n%s", d)
	}

	// Resume picks the unfinished run with the same fingerprint and
	// command, and counts the resume; it survives reopening the file.
	l.Close()
	if l, err = OpenLedger(p); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got1, err := l.BeginRun("transfer", "fp1", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got1.ID != r1.ID || got1.Resumes != 1 || got1.Args != "a b" {
		t.Errorf("resumed run %+v, want %s", got1, r1.ID)
	}
	if _, err := l.BeginRun("import-csv", "fp1", "", true); !errors.Is(err, ErrNoRun) {
		t.Errorf("other command resumed: %v", err)
	}
	if err := l.FinishRun(r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginRun("transfer", "fp1", "", true); !errors.Is(err, ErrNoRun) {
		t.Errorf("finished run resumed: %v", err)
	}
	if u, err := l.UnfinishedRun("import-csv", "fp2"); err != nil || u == nil || u.ID != r2.ID {
		t.Errorf("UnfinishedRun = %+v, %v", u, err)
	}

	// Prune removes finished runs only, unless asked.
	runs, jobs, err := l.Prune(PruneOptions{})
	if err != nil || runs != 1 || jobs != 3 {
		t.Fatalf("prune = %d runs, %d jobs, %v; want 1, 3", runs, jobs, err)
	}
	left, _ := l.Entries("")
	if len(left) != 1 || left[0].RunID != r2.ID {
		t.Errorf("left after prune: %+v", left)
	}
	runs, jobs, err = l.Prune(PruneOptions{Unfinished: true, Before: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil || runs != 0 || jobs != 0 {
		t.Errorf("prune before 2000 = %d, %d, %v", runs, jobs, err)
	}
	runs, jobs, err = l.Prune(PruneOptions{Unfinished: true})
	if err != nil || runs != 1 || jobs != 1 {
		t.Errorf("prune unfinished = %d, %d, %v", runs, jobs, err)
	}
	rs, _ := l.Runs()
	if len(rs) != 0 {
		t.Errorf("runs left: %+v", rs)
	}
}

func TestLedgerReadOnly(t *testing.T) {
	if _, err := OpenLedgerReadOnly(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Fatal("opened a missing ledger")
	}
	l, p := openTestLedger(t)
	r, err := l.BeginRun("transfer", "fp", "", false)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	ro, err := OpenLedgerReadOnly(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ro2, err := OpenLedgerReadOnly(p) // readers share
	if err != nil {
		t.Fatal(err)
	}
	defer ro2.Close()
	runs, err := ro2.Runs()
	if err != nil || len(runs) != 1 || runs[0].ID != r.ID {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
}

// TestHostRecord: what a connection records of its host (and the account
// it authenticates as, never the password) comes back, by
// the ledger's name for it, as a Host that reaches the same endpoint with
// the same own settings whatever another command line's --port and
// --https say; a damaged record is an error naming the host.
func TestHostRecord(t *testing.T) {
	cn := &Connector{Base: transport.Config{Auth: transport.AuthNTLM, User: "admin", Password: "pw"}}
	for _, tc := range []struct {
		name string
		host Host
		want HostRecord
		json string
	}{
		{"inventory host", Host{Name: "web1:15985", Address: "127.0.0.2", Port: 15985, User: "svc", Auth: "ntlm", Encryption: "always", Groups: []string{"all", "web"}},
			HostRecord{URL: "http://127.0.0.2:15985/wsman", User: "svc", Auth: "ntlm", Encryption: "always", Account: "svc"},
			`{"url":"http://127.0.0.2:15985/wsman","user":"svc","auth":"ntlm","encryption":"always","account":"svc"}`},
		{"https and a path", Host{Name: "web2", Address: "10.0.0.5", Scheme: "https", Path: "/custom", Auth: "basic"},
			HostRecord{URL: "https://10.0.0.5:5986/custom", Auth: "basic", Account: "admin"},
			`{"url":"https://10.0.0.5:5986/custom","auth":"basic","account":"admin"}`},
		{"https on another port", Host{Name: "web3:8443", Address: "web3.example.com", Port: 8443, Scheme: "https"},
			HostRecord{URL: "https://web3.example.com:8443/wsman", Account: "admin"},
			`{"url":"https://web3.example.com:8443/wsman","account":"admin"}`},
		{"-H host:port", mustHost(t, "server1:5985"), HostRecord{URL: "http://server1:5985/wsman", Account: "admin"}, `{"url":"http://server1:5985/wsman","account":"admin"}`},
		{"IPv6", mustHost(t, "[::1]:5986"), HostRecord{URL: "https://[::1]:5986/wsman", Account: "admin"}, `{"url":"https://[::1]:5986/wsman","account":"admin"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cn.Connect(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			rec := c.Record()
			if d := cmp.Diff(&tc.want, rec); d != "" {
				t.Errorf("record (-want +got):\n%s", d)
			}
			if b, err := json.Marshal(rec); err != nil || string(b) != tc.json {
				t.Errorf("JSON %s, %v; want %s", b, err, tc.json)
			}
			h, err := rec.Host(c.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []struct {
				port  int
				https bool
			}{{0, false}, {1234, true}, {5985, false}} {
				if name, url := h.Endpoint(d.port, d.https); name != c.Name || url != c.URL {
					t.Errorf("--port %d --https=%v: %s %s, want %s %s", d.port, d.https, name, url, c.Name, c.URL)
				}
			}
			if h.User != tc.host.User || h.Auth != tc.host.Auth || h.Encryption != tc.host.Encryption {
				t.Errorf("own settings %+v, want those of %+v", h, tc.host)
			}
		})
	}
	for _, tc := range []struct {
		rec  HostRecord
		want string
	}{
		{HostRecord{URL: "ftp://web1/wsman"}, `host web1:5985: recorded endpoint: host "ftp://web1/wsman": scheme must be http or https`},
		{HostRecord{URL: "http://web1:5985/wsman", Auth: "credssp"}, `host web1:5985: recorded auth: unknown auth method "credssp" (want basic, ntlm, certificate or kerberos)`},
		{HostRecord{URL: "http://web1:5985/wsman", Encryption: "sometimes"}, `host web1:5985: recorded encryption: unknown encryption mode "sometimes" (want auto, always or never)`},
	} {
		if _, err := tc.rec.Host("web1:5985"); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.rec, err, tc.want)
		}
	}
}

func mustHost(t *testing.T, s string) Host {
	t.Helper()
	h, err := ParseHost(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestLedgerOldEntry: an entry written before entries recorded their
// host's endpoint (no "endpoint" field) reads back without one, so that
// wait --run reaches its host by name as before.
func TestLedgerOldEntry(t *testing.T) {
	l, p := openTestLedger(t)
	const old = `{"runId":"20261101T000000Z-0ld0ld00","host":"web1:15985","index":0,"marker":"m1","jobId":"{11111111-2222-4333-8444-555555555555}",` +
		`"step":"resumed","state":"Transferring","request":{"displayName":"BITS Transfer","type":"Download","files":[{"remoteUrl":"http://f/a","localFile":"C:\\a"}]},` +
		`"created":"2026-11-01T00:00:00Z","updated":"2026-11-01T00:00:01Z"}`
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).Put(entryKey("20261101T000000Z-0ld0ld00", "web1:15985", 0), []byte(old))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Entries("20261101T000000Z-0ld0ld00")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{RunID: "20261101T000000Z-0ld0ld00", Host: "web1:15985", Marker: "m1", JobID: "{11111111-2222-4333-8444-555555555555}",
		Step: StepResumed, State: "Transferring", Request: Request{DisplayName: "BITS Transfer", Type: "Download", Files: []FileRecord{{RemoteURL: "http://f/a", LocalFile: `C:\a`}}},
		Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Updated: time.Date(2026, 11, 1, 0, 0, 1, 0, time.UTC)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("old entry (-want +got):\n%s", d)
	}
}
