package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/wsman"
)

func TestImportCSV(t *testing.T) {
	h := newSimHost(t)
	dir := t.TempDir()
	csvText := "\ufeff#TYPE System.Management.Automation.PSCustomObject\n" +
		"\"Source\",\"Destination\"\n" +
		"\"" + h.FilesURL + "/file.bin\",\"" + filepath.Join(dir, "a.bin") + "\"\n" +
		"\"ftp://example.com/x\",\"" + filepath.Join(dir, "b.bin") + "\"\n" +
		"\"" + h.FilesURL + "/other.bin\",\"\"\n" +
		"\"" + h.FilesURL + "/other.bin\",\"" + filepath.Join(dir, "c.bin") + "\"\n"
	file := filepath.Join(t.TempDir(), "jobs.csv")
	if err := os.WriteFile(file, []byte(csvText), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, withPassword(), "import-csv", file, "--interval", "20ms", "-H", h.hostArg(), "-u", testUser, "-o", "jsonl")
	if r.code != ExitUsage {
		t.Errorf("exit %d, want 2 (bad rows); stderr %s", r.code, r.stderr)
	}
	for _, want := range []string{
		file + ` row 2 (line 4): remote URL "ftp://example.com/x": want http://, https:// or a UNC path`,
		file + " row 3 (line 5): Destination is empty",
		"2 bad row(s) in " + file + " skipped",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	rows := map[float64]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := decode(t, l)
		rows[m["row"].(float64)] = m
	}
	if len(rows) != 2 || rows[1] == nil || rows[4] == nil {
		t.Fatalf("records for rows %v, want rows 1 and 4:\n%s", rows, r.stdout)
	}
	for n, m := range rows {
		if m["state"] != "Acknowledged" || m["outcome"].(map[string]any)["result"] != "Completed" {
			t.Errorf("row %v: state %v outcome %v", n, m["state"], m["outcome"])
		}
	}
	if sha(readFile(t, filepath.Join(dir, "a.bin"))) != sha(h.content) || string(readFile(t, filepath.Join(dir, "c.bin"))) != string(h.content[:100]) {
		t.Error("downloaded files differ from the sources")
	}
	if _, err := os.Stat(filepath.Join(dir, "b.bin")); !os.IsNotExist(err) {
		t.Error("the bad row was transferred")
	}
}

func TestReadTransferCSV(t *testing.T) {
	tests := []struct {
		name, in string
		want     []csvRow
		err      string
	}{
		{name: "extra columns any order", in: "Destination,Note,SOURCE\nC:\\a,x,http://h/a\n\n",
			want: []csvRow{{N: 1, Source: "http://h/a", Destination: `C:\a`}}},
		{name: "no header", in: "", err: "empty file"},
		{name: "wrong header", in: "From,To\na,b\n", err: `the header "From,To" must name the columns Source and Destination`},
		{name: "short row", in: "Source,Destination\nhttp://h/a\n", want: []csvRow{{N: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readTransferCSV(strings.NewReader(tt.in), "f.csv")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("rows %+v", got)
			}
			for i := range got {
				if got[i].N != tt.want[i].N || got[i].Source != tt.want[i].Source || got[i].Destination != tt.want[i].Destination {
					t.Errorf("row %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if tt.name == "short row" && (got[0].Err == nil || got[0].Err.Error() != "f.csv row 1 (line 2): 1 fields; want Source and Destination") {
				t.Errorf("short row error = %v", got[0].Err)
			}
		})
	}
}

func TestWSManCommands(t *testing.T) {
	h := newSimHost(t)
	id := createSuspended(t, h, tempPath(t, "a.bin"))
	const uri = "wmi/root/microsoft/bits/BitsClientJob"
	base := []string{"-H", h.hostArg(), "-u", testUser}
	sel := "JobId=" + id

	r := run(t, withPassword(), append([]string{"wsman", "get", uri, "-s", sel, "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wsman get: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["JobId"] != id || m["DisplayName"] != "nightly" || m["State"] != "3" {
		t.Errorf("wsman get -o json: %v", m)
	}
	if _, ok := m["host"]; ok {
		t.Error("one host: the instance object must hold only its properties")
	}
	files, ok := m["Files"].(map[string]any)
	if !ok || files["RemoteUrl"] != h.FilesURL+"/file.bin" {
		t.Errorf("Files (one embedded object) = %#v", m["Files"])
	}

	r = run(t, withPassword(), append([]string{"wsman", "get", uri, "-s", sel, "--xpath", "//p:DisplayName"}, base...)...)
	if r.code != 0 || r.stdout != "nightly\n" {
		t.Errorf("--xpath: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}

	r = run(t, withPassword(), append([]string{"wsman", "put", uri, "-s", sel, "-v", "Priority=1", "-v", "Description=patched", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wsman put: exit %d: %s", r.code, r.stderr)
	}
	if m := decode(t, r.stdout); m["Priority"] != "1" || m["Description"] != "patched" {
		t.Errorf("put result: Priority %v Description %v", m["Priority"], m["Description"])
	}

	// A property the instance does not hold exactly once is refused
	// here, as Set-WSManInstance does, before any Put is sent.
	h.Server.ResetLog()
	r = run(t, withPassword(), append([]string{"wsman", "put", uri, "-s", sel, "-v", "NoSuch=1", "-v", "Priority=2"}, base...)...)
	if want := "bitsremote: " + h.hostArg() + ": put: property NoSuch is not in the BitsClientJob instance; nothing was sent\n"; r.code != ExitUsage || r.stderr != want {
		t.Errorf("wsman put -v NoSuch=1: exit %d stderr %q; want 2, %q", r.code, r.stderr, want)
	}
	for _, e := range h.Server.Log() {
		if e.Action == wsman.ActionPut {
			t.Errorf("a Put was sent for an unknown property: %+v", e)
		}
	}

	r = run(t, withPassword(), append([]string{"wsman", "invoke", uri, "SetJobState", "-s", sel, "-v", "JobState=0", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wsman invoke: exit %d: %s", r.code, r.stderr)
	}
	if diff := cmp.Diff(map[string]any{"ReturnValue": "0"}, decode(t, r.stdout)); diff != "" {
		t.Errorf("invoke output (-want +got):\n%s", diff)
	}

	id2 := createSuspended(t, h, tempPath(t, "b.bin"))
	id3 := createSuspended(t, h, tempPath(t, "c.bin"))
	r = run(t, withPassword(), append([]string{"wsman", "enumerate", uri, "--max-elements", "1", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wsman enumerate: exit %d: %s", r.code, r.stderr)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil {
		t.Fatalf("enumerate -o json: %v\n%s", err, r.stdout)
	}
	got := map[any]bool{}
	for _, it := range items {
		got[it["JobId"]] = true
	}
	if len(items) != 2 || !got[id2] || !got[id3] {
		t.Errorf("enumerate returned %v, want %s and %s (the cancelled job left the queue)", got, id2, id3)
	}

	r = run(t, withPassword(), append([]string{"wsman", "enumerate", "wmi/root/microsoft/bits/*", "--filter",
		"SELECT * FROM BitsClientJob WHERE JobId = '" + id3 + "'", "-o", "jsonl"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wsman enumerate --filter: exit %d: %s", r.code, r.stderr)
	}
	if m := decode(t, r.stdout); m["JobId"] != id3 || m["State"] != "3" {
		t.Errorf("WQL enumeration: %s", r.stdout)
	}

	r = run(t, withPassword(), append([]string{"wsman", "delete", uri, "-s", "JobId=" + id2}, base...)...)
	if r.code != ExitFault || !strings.Contains(r.stderr, "ActionNotSupported") {
		t.Errorf("wsman delete (the provider has no Delete): exit %d stderr %s", r.code, r.stderr)
	}

	r = run(t, nil, "wsman", "identify", "-H", h.hostArg(), "-o", "json")
	if r.code != 0 {
		t.Fatalf("identify needs no password: exit %d: %s", r.code, r.stderr)
	}
	if m := decode(t, r.stdout); m["productVendor"] != "Microsoft Corporation" || m["protocolVersion"] != "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" {
		t.Errorf("identify: %v", m)
	}
}

func TestMultiHost(t *testing.T) {
	h1, h2 := newSimHost(t), newSimHost(t)
	id := createSuspended(t, h1, tempPath(t, "a.bin"))
	inv := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(inv, []byte("# fleet\n"+h2.hostArg()+"\n127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, withPassword(), "list", "-H", h1.hostArg(), "--inventory", inv, "-u", testUser, "--timeout", "5s", "--retries", "0", "-o", "json")
	if r.code != ExitConnection {
		t.Errorf("exit %d, want 4 (one host unreachable)", r.code)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(recs) != 2 || recs[0]["host"] != "127.0.0.1:1" || recs[0]["exitCode"] != float64(4) || recs[1]["jobId"] != id || recs[1]["host"] != h1.hostArg() {
		t.Errorf("records: %v", recs)
	}
	if !strings.Contains(r.stderr, "bitsremote: 127.0.0.1:1: ") || !strings.Contains(r.stderr, "1 of 3 hosts failed") {
		t.Errorf("stderr: %s", r.stderr)
	}

	r = run(t, withPassword(), "list", "-H", h1.hostArg(), "-H", h2.hostArg(), "-u", testUser)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "HOST") || !strings.Contains(r.stdout, h1.hostArg()+"  "+id) {
		t.Errorf("fleet table: exit %d\n%s", r.code, r.stdout)
	}
}

func TestSecretsStayOutOfDebugOutput(t *testing.T) {
	h := newSimHost(t)
	id := createSuspended(t, h, tempPath(t, "a.bin"))
	env := map[string]string{EnvPassword: testPassword, EnvJobPassword: "job-secret-77"}
	r := run(t, env, "set-credentials", id, "--scheme", "ntlm", "--job-user", `CORP\svc`, "--debug", "-H", h.hostArg(), "-u", testUser)
	if r.code != 0 {
		t.Fatalf("set-credentials: exit %d: %s", r.code, r.stderr)
	}
	if want := h.hostArg() + ": set credentials on " + id + `: Server NTLM as CORP\svc` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "SetCredentials") || !strings.Contains(r.stderr, "REDACTED") {
		t.Errorf("debug output lacks the redacted SetCredentials call:\n%.2000s", r.stderr)
	}
	for _, secret := range []string{testPassword, "job-secret-77"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("a password appears in the output")
		}
	}
}

func TestPasswordSources(t *testing.T) {
	h := newSimHost(t)
	base := []string{"list", "-H", h.hostArg(), "-u", testUser}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, append(base, "--password-file", pwFile)...); r.code != 0 {
		t.Errorf("--password-file: exit %d: %s", r.code, r.stderr)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, append(base, "--password-file", empty)...); r.code != ExitUsage || !strings.Contains(r.stderr, "the first line is empty") {
		t.Errorf("empty password file: exit %d: %s", r.code, r.stderr)
	}
	if r := run(t, nil, append(base, "--password", "x")...); r.code != ExitUsage || !strings.Contains(r.stderr, "unknown flag: --password") {
		t.Errorf("--password must not exist: exit %d: %s", r.code, r.stderr)
	}

	// On a terminal the password is prompted for, without echo.
	ios, _, out, errOut := Test()
	ios.StdinTTY = true
	var prompt string
	ios.ReadSecret = func(p string) (string, error) { prompt = p; return testPassword, nil }
	f := NewFactory()
	f.IO = ios
	f.Getenv = func(string) string { return "" }
	if code := Execute(context.Background(), f, base); code != 0 {
		t.Errorf("prompted password: exit %d: %s", code, errOut.String())
	}
	if prompt != "Password for admin: " || out.String() != "" || errOut.String() != "no jobs\n" {
		t.Errorf("prompt %q, stdout %q, stderr %q", prompt, out.String(), errOut.String())
	}
}

func TestJobErrorAndProxyCommands(t *testing.T) {
	h := newSimHost(t)
	base := []string{"-H", h.hostArg(), "-u", testUser}
	r := run(t, withPassword(), append([]string{"transfer", h.FilesURL + "/missing.bin", tempPath(t, "m.bin"), "--on-error", "leave", "--interval", "20ms", "--async=false", "-o", "json"}, base...)...)
	if r.code != ExitJobFailed {
		t.Fatalf("transfer: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["state"] != "Error" {
		t.Fatalf("--on-error leave: state %v", m["state"])
	}
	id := m["jobId"].(string)

	r = run(t, withPassword(), append([]string{"error", id, "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("error: exit %d: %s", r.code, r.stderr)
	}
	e := decode(t, r.stdout)["error"].(map[string]any)
	if e["code"] != "0x80190194" || e["codeName"] != "BG_E_HTTP_ERROR_404" || e["context"] != "RemoteFile" {
		t.Errorf("error object: %v", e)
	}
	r = run(t, withPassword(), append([]string{"get", id}, base...)...)
	if !regexp.MustCompile(`(?m)^Error: +0x80190194 BG_E_HTTP_ERROR_404 in RemoteFile: `).MatchString(r.stdout) {
		t.Errorf("get table shows no error line:\n%s", r.stdout)
	}

	r = run(t, withPassword(), append([]string{"set-proxy", id, "--usage", "override", "--list", "proxy1:8080,proxy2:8080", "--bypass", "<local>"}, base...)...)
	if r.code != 0 || r.stdout != h.hostArg()+": set proxy on "+id+": Override\n" {
		t.Errorf("set-proxy: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, withPassword(), append([]string{"set-proxy", id, "--usage", "noproxy", "--list", "p:1"}, base...)...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--list and --bypass need --usage override") {
		t.Errorf("set-proxy noproxy with a list: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, withPassword(), append([]string{"cancel", id}, base...)...)
	if r.code != 0 {
		t.Errorf("cancel: exit %d: %s", r.code, r.stderr)
	}
}

func TestHelpHasExamples(t *testing.T) {
	root := NewCmdRoot(NewFactory())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "wsman" {
				walk(sub)
				continue
			}
			if sub.HasSubCommands() {
				walk(sub)
				continue
			}
			if strings.TrimSpace(sub.Example) == "" {
				t.Errorf("%s has no example", sub.CommandPath())
			}
		}
	}
	walk(root)
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := run(t, nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "bitsremote") {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
	if r := run(t, nil, "completion", "tcsh"); r.code != ExitUsage {
		t.Errorf("completion tcsh: exit %d", r.code)
	}
}

func TestImportCSVStdinTable(t *testing.T) {
	h := newSimHost(t)
	dir := t.TempDir()
	in := "Source, Destination\n" + h.FilesURL + "/other.bin, " + filepath.Join(dir, "o.bin") + "\n"
	r := runIn(t, in, withPassword(), "import-csv", "-", "--interval", "20ms", "-H", h.hostArg(), "-u", testUser)
	if r.code != 0 {
		t.Fatalf("import-csv -: exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ROW") || !regexp.MustCompile(`^1 +\{[0-9A-F-]+\} +Acknowledged +100 B / 100 B \(100%\) +Completed$`).MatchString(lines[1]) {
		t.Errorf("import-csv table:\n%s", r.stdout)
	}
	if string(readFile(t, filepath.Join(dir, "o.bin"))) != string(h.content[:100]) {
		t.Error("o.bin differs")
	}
}
