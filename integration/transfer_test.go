package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTransfer runs Start-BitsTransfer's equivalent: synchronous with
// several sources into a directory, one source to a file name, --async
// then wait, server credentials for the job, a 404 (exit 1, cancelled), a
// timeout (exit 4, job left), and an upload.
func TestTransfer(t *testing.T) {
	t.Parallel()
	uploads := t.TempDir()
	s := startSim(t, simOptions{uploadDir: uploads})
	fs := newFileServer(t)
	host := s.host().Host

	t.Run("several sources into a directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		var urls []string
		contents := map[string][]byte{}
		for _, name := range []string{"one.bin", "two.bin", "three.bin"} {
			u, b := fs.addRandom("multi/"+name, 40_000+len(name)*1000)
			urls = append(urls, u)
			contents[name] = b
		}
		res := s.run(t, append(append([]string{"transfer"}, urls...), dir+"/", "--interval", "50ms", "-o", "json")...)
		wantCode(t, res, 0)
		if res.Stderr != "" {
			t.Errorf("transfer on a pipe wrote on stderr (progress belongs to terminals):\n%s", res.Stderr)
		}
		var j jobJSON
		decode(t, res, &j)
		var total uint64
		var wantFiles []fileJSON
		for i, name := range []string{"one.bin", "two.bin", "three.bin"} {
			n := uint64(len(contents[name]))
			total += n
			wantFiles = append(wantFiles, fileJSON{RemoteURL: urls[i], LocalFile: filepath.Join(dir, name), BytesTotal: u64(n), BytesTransferred: n, Completed: true})
		}
		if diff := cmp.Diff(wantFiles, j.Files); diff != "" {
			t.Errorf("transfer: files (-want +got):\n%s", diff)
		}
		if j.Host != host || !guidRE.MatchString(j.JobID) || j.DisplayName != "BITS Transfer" || j.Priority != "Foreground" ||
			j.State != "Acknowledged" || j.StateCode != 7 || j.BytesTotal == nil || *j.BytesTotal != total ||
			j.BytesTransferred != total || j.FilesTotal != 3 || j.FilesTransferred != 3 || j.Error != nil ||
			j.Outcome == nil || j.Outcome.Result != "Completed" || j.Completed == nil {
			t.Errorf("transfer -o json: %+v, outcome %+v", j, j.Outcome)
		}
		for name, want := range contents {
			sameBytes(t, name, readFile(t, filepath.Join(dir, name)), want)
		}
	})

	t.Run("one source to a file name, table output", func(t *testing.T) {
		t.Parallel()
		u, b := fs.addRandom("single.bin", 77_777)
		local := filepath.Join(t.TempDir(), "renamed.bin")
		res := s.run(t, "transfer", u, local, "--interval", "50ms", "--name", "single", "--priority", "low")
		wantCode(t, res, 0)
		for _, line := range [][]string{{"DisplayName:", "single"}, {"State:", "Acknowledged (7)"}, {"Priority:", "Low"}, {"Outcome:", "Completed"}} {
			if !hasLine(res.Stdout, line...) {
				t.Errorf("transfer: no line with %q\n%s", line, res.Stdout)
			}
		}
		sameBytes(t, "renamed.bin", readFile(t, local), b)
	})

	t.Run("async then wait", func(t *testing.T) {
		t.Parallel()
		u, b := fs.addRandom("async.bin", 64_000)
		local := filepath.Join(t.TempDir(), "async.bin")
		res := s.run(t, "transfer", u, local, "--async", "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		// Not waited for and not completed by us; a small download may
		// already be Transferred (with its completion time) by the time
		// the job is read back, but never Acknowledged.
		if !guidRE.MatchString(j.JobID) || j.Outcome == nil || j.Outcome.Result != "Async" || j.State == "Acknowledged" || (j.Completed != nil && j.State != "Transferred") {
			t.Fatalf("transfer --async: jobId %q state %s outcome %+v", j.JobID, j.State, j.Outcome)
		}
		res = s.run(t, "wait", j.JobID, "--complete", "--interval", "50ms", "-o", "json")
		wantCode(t, res, 0)
		sameBytes(t, "async.bin", readFile(t, local), b)
	})

	t.Run("job credentials", func(t *testing.T) {
		t.Parallel()
		const jobPassword = "Transfer-Job-Secret-19"
		u, b := fs.addRandom("private.bin", 10_000)
		fs.requireBasic("private.bin", "svc-files", jobPassword)
		local := filepath.Join(t.TempDir(), "private.bin")
		res := run(t, runSpec{
			args:    append([]string{"transfer", u, local, "--job-user", "svc-files", "--job-auth", "basic", "--interval", "50ms", "-o", "json"}, s.conn(0)...),
			env:     []string{"BITSREMOTE_PASSWORD=" + s.password, "BITSREMOTE_JOB_PASSWORD=" + jobPassword},
			secrets: append(s.secrets(), jobPassword, basicToken("svc-files", jobPassword)),
		})
		wantCode(t, res, 0)
		sameBytes(t, "private.bin", readFile(t, local), b)
	})

	t.Run("404 is cancelled, exit 1", func(t *testing.T) {
		t.Parallel()
		local := filepath.Join(t.TempDir(), "gone.bin")
		res := s.run(t, "transfer", fs.URL+"/gone.bin", local, "--interval", "50ms", "-o", "json")
		wantCode(t, res, 1)
		var j jobJSON
		decode(t, res, &j)
		if j.State != "Cancelled" || j.StateCode != 8 || j.Outcome == nil || j.Outcome.Result != "Cancelled" ||
			j.Error == nil || j.Error.CodeName != "BG_E_HTTP_ERROR_404" || j.Error.Context != "RemoteFile" {
			t.Errorf("transfer of a 404: state %s (%d), outcome %+v, error %+v", j.State, j.StateCode, j.Outcome, j.Error)
		}
		if !strings.Contains(res.Stderr, "BG_E_HTTP_ERROR_404") {
			t.Errorf("stderr does not say why:\n%s", res.Stderr)
		}
		wantCode(t, s.run(t, "get", j.JobID), 5)
	})

	t.Run("timeout leaves the job, exit 4", func(t *testing.T) {
		t.Parallel()
		u, _ := fs.addRandom("stuck.bin", 100_000)
		fs.stall("stuck.bin", 10_000)
		local := filepath.Join(t.TempDir(), "stuck.bin")
		res := s.run(t, "transfer", u, local, "--interval", "50ms", "--timeout", "2s", "-o", "json")
		wantCode(t, res, 4)
		var j jobJSON
		decode(t, res, &j)
		if j.Outcome == nil || j.Outcome.Result != "TimedOut" || j.State == "Cancelled" || j.State == "Acknowledged" {
			t.Errorf("transfer --timeout: state %s, outcome %+v; want TimedOut with the job left", j.State, j.Outcome)
		}
		res = s.run(t, "list", "-o", "json")
		wantCode(t, res, 0)
		var list []jobJSON
		decode(t, res, &list)
		if !slices.Contains(jobIDs(list), j.JobID) {
			t.Errorf("the timed-out job %s is not in the list any more", j.JobID)
		}
		wantCode(t, s.run(t, "cancel", j.JobID), 0)
	})

	t.Run("upload", func(t *testing.T) {
		t.Parallel()
		src := filepath.Join(t.TempDir(), "report.zip")
		content := []byte(strings.Repeat("upload me byte for byte\n", 5000))
		if err := os.WriteFile(src, content, 0o644); err != nil {
			t.Fatal(err)
		}
		dest := s.host().UploadURL + "/report.zip"
		res := s.run(t, "transfer", src, dest, "--type", "upload", "--interval", "50ms", "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		want := []fileJSON{{RemoteURL: dest, LocalFile: src, BytesTotal: u64(uint64(len(content))), BytesTransferred: uint64(len(content)), Completed: true}}
		if diff := cmp.Diff(want, j.Files); diff != "" {
			t.Errorf("upload files (-want +got):\n%s", diff)
		}
		if j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "Completed" {
			t.Errorf("upload: state %s outcome %+v", j.State, j.Outcome)
		}
		sameBytes(t, "uploaded report.zip", readFile(t, filepath.Join(uploads, "report.zip")), content)
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"transfer", fs.URL + "/x"}, "SOURCE"},
			{[]string{"transfer", "ftp://files.example.com/a.iso", "/tmp/a.iso"}, "ftp://files.example.com/a.iso"},
			{[]string{"transfer", fs.URL + "/a", fs.URL + "/b", "/tmp/x", "--type", "upload"}, "upload"},
			{[]string{"transfer", fs.URL + "/a", "/tmp/a", "--priority", "urgent"}, "urgent"},
			{[]string{"transfer", fs.URL + "/a", "/tmp/a", "--transient", "maybe"}, "maybe"},
		} {
			res := s.run(t, tc.args...)
			wantCode(t, res, 2)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%v: stderr does not mention %q:\n%s", tc.args, tc.want, res.Stderr)
			}
			if res.Stdout != "" {
				t.Errorf("%v: printed on stdout:\n%s", tc.args, res.Stdout)
			}
		}
	})
}

// TestImportCSV: one job per row, with the PowerShell Export-CSV frills
// (BOM, #TYPE line, quoted header, extra column); bad rows are named on
// stderr and skipped, the good rows still run and are reported, and the
// exit code is 2.
func TestImportCSV(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	dir := t.TempDir()
	u1, b1 := fs.addRandom("csv/first.bin", 33_000)
	u2, b2 := fs.addRandom("csv/second.bin", 44_000)
	d1, d2 := filepath.Join(dir, "first.bin"), filepath.Join(dir, "second.bin")

	t.Run("bad rows skipped, good rows done", func(t *testing.T) {
		csv := "\ufeff#TYPE Selected.System.Management.Automation.PSCustomObject\r\n" +
			"\"Source\",\"Destination\",\"Note\"\r\n" +
			"\"" + u1 + "\",\"" + d1 + "\",\"first\"\r\n" +
			"\"" + fs.URL + "/csv/x.bin\",\"\",\"no destination\"\r\n" +
			fs.URL + "/csv/a\"b.bin," + filepath.Join(dir, "q.bin") + ",bare quote\r\n" +
			"\"" + u2 + "\",\"" + d2 + "\",\"second\"\r\n" +
			"\"ftp://old.example.com/y.bin\",\"" + filepath.Join(dir, "y.bin") + "\",\"bad scheme\"\r\n"
		file := filepath.Join(t.TempDir(), "transfers.csv")
		if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		res := s.run(t, "import-csv", file, "--interval", "50ms", "-o", "json")
		wantCode(t, res, 2)
		var rows []rowJSON
		decode(t, res, &rows)
		got := map[int]rowJSON{}
		for _, r := range rows {
			got[r.Row] = r
		}
		if len(rows) != 2 {
			t.Errorf("import-csv -o json printed %d records, want the 2 good rows:\n%s", len(rows), res.Stdout)
		}
		for _, w := range []struct {
			row       int
			url, path string
			content   []byte
		}{{1, u1, d1, b1}, {4, u2, d2, b2}} {
			r, ok := got[w.row]
			if !ok {
				t.Errorf("no record for row %d", w.row)
				continue
			}
			n := uint64(len(w.content))
			if r.Host != s.host().Host || r.State != "Acknowledged" || r.Outcome == nil || r.Outcome.Result != "Completed" ||
				r.ExitCode != 0 || r.Failure != "" ||
				!cmp.Equal(r.Files, []fileJSON{{RemoteURL: w.url, LocalFile: w.path, BytesTotal: u64(n), BytesTransferred: n, Completed: true}}) {
				t.Errorf("row %d: %+v", w.row, r)
			}
			sameBytes(t, filepath.Base(w.path), readFile(t, w.path), w.content)
		}
		for _, want := range [][]string{{"row 2", "Destination is empty", "skipped"}, {"row 3", `bare "`, "skipped"}, {"row 5", "ftp://old.example.com/y.bin", "skipped"}, {"3 bad row(s)"}} {
			if !hasLine(res.Stderr, want...) {
				t.Errorf("stderr has no line with %q:\n%s", want, res.Stderr)
			}
		}
	})

	t.Run("stdin, async, jsonl", func(t *testing.T) {
		u, b := fs.addRandom("csv/stdin.bin", 5000)
		d := filepath.Join(dir, "stdin.bin")
		res := run(t, runSpec{
			args:    append([]string{"import-csv", "-", "--async", "-o", "jsonl"}, s.conn(0)...),
			env:     []string{"BITSREMOTE_PASSWORD=" + s.password},
			stdin:   strings.NewReader("source,destination\n" + u + "," + d + "\n"),
			secrets: s.secrets(),
		})
		wantCode(t, res, 0)
		rows := decodeLines[rowJSON](t, res)
		if len(rows) != 1 || rows[0].Row != 1 || rows[0].Outcome == nil || rows[0].Outcome.Result != "Async" || !guidRE.MatchString(rows[0].JobID) {
			t.Fatalf("import-csv --async -o jsonl: %+v", rows)
		}
		wantCode(t, s.run(t, "wait", rows[0].JobID, "--complete", "--interval", "50ms"), 0)
		sameBytes(t, "stdin.bin", readFile(t, d), b)
	})

	t.Run("unusable files", func(t *testing.T) {
		for _, tc := range []struct {
			name, csv, want string
		}{
			{"no header", u1 + "," + d1 + "\n", "Source and Destination"},
			{"empty", "", "empty file"},
			{"only bad rows", "Source,Destination\n," + d1 + "\n", "no usable rows"},
		} {
			file := filepath.Join(t.TempDir(), "bad.csv")
			if err := os.WriteFile(file, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			res := s.run(t, "import-csv", file)
			wantCode(t, res, 2)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, tc.want, res.Stderr)
			}
		}
		res := s.run(t, "import-csv", filepath.Join(dir, "does-not-exist.csv"))
		wantCode(t, res, 2)
		if !strings.Contains(res.Stderr, "does-not-exist.csv") {
			t.Errorf("missing file: stderr does not name it:\n%s", res.Stderr)
		}
	})
}

// TestConcurrentTransfers: an admin (or cron, or Ansible) runs two
// transfers at once from the same account, so with the same job ledger.
// Both must run; neither may be refused because the other holds the
// ledger for the length of its transfer.
func TestConcurrentTransfers(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	ledger := []string{"BITSREMOTE_PASSWORD=" + s.password, "BITSREMOTE_LEDGER=" + filepath.Join(t.TempDir(), "ledger.db")}
	uA, a := fs.addRandom("long.bin", 100_000)
	fs.stall("long.bin", 10_000)
	uB, b := fs.addRandom("short.bin", 1000)
	dir := t.TempDir()

	first := runAsync(t, runSpec{args: append([]string{"transfer", uA, filepath.Join(dir, "long.bin"), "--name", "long", "--interval", "50ms"}, s.conn(0)...),
		env: ledger})
	// Wait until the first transfer's job is moving bytes.
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := s.run(t, "list", "-o", "json")
		var list []jobJSON
		decode(t, res, &list)
		if slices.ContainsFunc(list, func(j jobJSON) bool { return j.DisplayName == "long" && j.BytesTransferred > 0 }) {
			break
		}
		if time.Now().After(deadline) {
			fs.unstall("long.bin")
			t.Fatalf("the first transfer's job never started:\n%s", <-first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := run(t, runSpec{args: append([]string{"transfer", uB, filepath.Join(dir, "short.bin"), "--name", "short", "--interval", "50ms"}, s.conn(0)...),
		env: ledger, secrets: s.secrets()})
	fs.unstall("long.bin")
	r1 := <-first
	checkNoSecrets(t, r1, s.secrets())
	wantCode(t, r1, 0)
	sameBytes(t, "long.bin", readFile(t, filepath.Join(dir, "long.bin")), a)
	wantCode(t, second, 0)
	sameBytes(t, "short.bin", readFile(t, filepath.Join(dir, "short.bin")), b)
}
