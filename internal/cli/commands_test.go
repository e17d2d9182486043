package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var guidRE = regexp.MustCompile(`^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$`)

// createSuspended creates a suspended job and returns its id.
func createSuspended(t *testing.T, h *simHost, local string) string {
	t.Helper()
	r := run(t, withPassword(), "create", "--url", h.FilesURL+"/file.bin", "--local", local,
		"--name", "nightly", "--description", "test job", "--suspended", "-H", h.hostArg(), "-u", testUser)
	if r.code != 0 {
		t.Fatalf("create: exit %d\nstderr: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if !guidRE.MatchString(id) {
		t.Fatalf("create printed %q, want a braced GUID", r.stdout)
	}
	return id
}

func TestCreateGetJSON(t *testing.T) {
	h := newSimHost(t)
	local := tempPath(t, "a.bin")
	id := createSuspended(t, h, local)

	r := run(t, withPassword(), "get", id, "-H", h.hostArg(), "-u", testUser, "-o", "json")
	if r.code != 0 {
		t.Fatalf("get: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	want := map[string]any{
		"host":             h.hostArg(),
		"jobId":            id,
		"displayName":      "nightly",
		"description":      "test job",
		"state":            "Suspended",
		"stateCode":        float64(3),
		"priority":         "Normal",
		"bytesTotal":       nil,
		"bytesTransferred": float64(0),
		"filesTotal":       float64(1),
		"filesTransferred": float64(0),
		"owner":            `NT AUTHORITY\NETWORK SERVICE`,
		"completed":        nil,
		"error":            nil,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("field %q missing", k)
			continue
		}
		if diff := cmp.Diff(v, got); diff != "" {
			t.Errorf("field %q (-want +got):\n%s", k, diff)
		}
	}
	for _, k := range []string{"created", "modified"} {
		s, _ := m[k].(string)
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(s) {
			t.Errorf("%s = %v, want an RFC 3339 UTC time", k, m[k])
		}
	}
	files, _ := m["files"].([]any)
	if len(files) != 1 {
		t.Fatalf("files = %v, want one", m["files"])
	}
	f0 := files[0].(map[string]any)
	if f0["remoteUrl"] != h.FilesURL+"/file.bin" || f0["localFile"] != local || f0["completed"] != false {
		t.Errorf("files[0] = %v", f0)
	}
	// The host field comes first, so people reading jsonl see it first.
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "{\n  \"host\": ") {
		t.Errorf("json does not start with the host field:\n%s", r.stdout)
	}
}

func TestJobLifecycleCommands(t *testing.T) {
	h := newSimHost(t)
	local := tempPath(t, "a.bin")
	id := createSuspended(t, h, local)
	base := []string{"-H", h.hostArg(), "-u", testUser}

	r := run(t, withPassword(), append([]string{"priority", id, "foreground", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("priority: exit %d: %s", r.code, r.stderr)
	}
	if diff := cmp.Diff(map[string]any{"host": h.hostArg(), "jobId": id, "action": "priority", "detail": "Foreground"}, decode(t, r.stdout)); diff != "" {
		t.Errorf("priority output (-want +got):\n%s", diff)
	}

	other := tempPath(t, "b.bin")
	r = run(t, withPassword(), append([]string{"add-file", id, h.FilesURL + "/other.bin", other}, base...)...)
	if r.code != 0 {
		t.Fatalf("add-file: exit %d: %s", r.code, r.stderr)
	}
	if want := h.hostArg() + ": added file to " + id + ": " + h.FilesURL + "/other.bin -> " + other + "\n"; r.stdout != want {
		t.Errorf("add-file printed %q, want %q", r.stdout, want)
	}

	r = run(t, withPassword(), append([]string{"resume", id}, base...)...)
	if r.code != 0 || r.stdout != h.hostArg()+": resumed "+id+"\n" {
		t.Fatalf("resume: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}

	r = run(t, withPassword(), append([]string{"wait", id, "--complete", "--interval", "20ms", "--timeout", "30s", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wait: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["state"] != "Acknowledged" || m["filesTransferred"] != float64(2) || m["bytesTotal"] != float64(len(h.content)+100) {
		t.Errorf("wait result: state %v files %v bytesTotal %v", m["state"], m["filesTransferred"], m["bytesTotal"])
	}
	oc, _ := m["outcome"].(map[string]any)
	if oc["result"] != "Completed" {
		t.Errorf("outcome = %v, want result Completed", oc)
	}
	if got := readFile(t, local); sha(got) != sha(h.content) {
		t.Errorf("downloaded file differs from the source")
	}
	if got := readFile(t, other); string(got) != string(h.content[:100]) {
		t.Errorf("second file differs from the source")
	}

	// The job has left the queue: asking for it is the host's fault.
	r = run(t, withPassword(), append([]string{"get", id}, base...)...)
	if r.code != ExitFault {
		t.Errorf("get after complete: exit %d, want %d; stderr %s", r.code, ExitFault, r.stderr)
	}
}

func TestTransferDownload(t *testing.T) {
	h := newSimHost(t)
	dir := t.TempDir()
	r := run(t, withPassword(), "transfer", h.FilesURL+"/file.bin", h.FilesURL+"/other.bin", dir+"/",
		"--interval", "20ms", "-H", h.hostArg(), "-u", testUser, "-o", "json")
	if r.code != 0 {
		t.Fatalf("transfer: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["state"] != "Acknowledged" || m["priority"] != "Foreground" || m["displayName"] != "BITS Transfer" {
		t.Errorf("transfer job: state %v priority %v name %v", m["state"], m["priority"], m["displayName"])
	}
	if oc := m["outcome"].(map[string]any); oc["result"] != "Completed" {
		t.Errorf("outcome %v", oc)
	}
	if got := readFile(t, filepath.Join(dir, "file.bin")); sha(got) != sha(h.content) {
		t.Error("file.bin differs")
	}
	if got := readFile(t, filepath.Join(dir, "other.bin")); string(got) != string(h.content[:100]) {
		t.Error("other.bin differs")
	}
}

func TestTransferFailureExitCode(t *testing.T) {
	h := newSimHost(t)
	local := tempPath(t, "missing.bin")
	r := run(t, withPassword(), "transfer", h.FilesURL+"/missing.bin", local,
		"--interval", "20ms", "--timeout", "30s", "-H", h.hostArg(), "-u", testUser, "-o", "json")
	if r.code != ExitJobFailed {
		t.Fatalf("transfer of a 404: exit %d, want 1; stderr %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["state"] != "Cancelled" {
		t.Errorf("state = %v, want Cancelled (transfer cancels failed jobs by default)", m["state"])
	}
	e, _ := m["error"].(map[string]any)
	want := map[string]any{"context": "RemoteFile", "code": "0x80190194", "codeName": "BG_E_HTTP_ERROR_404"}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("error.%s = %v, want %v (error %v)", k, e[k], v, e)
		}
	}
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Errorf("a failed download left %s", local)
	}
}

func TestTransferAsync(t *testing.T) {
	h := newSimHost(t)
	local := tempPath(t, "a.bin")
	r := run(t, withPassword(), "transfer", h.FilesURL+"/file.bin", local, "--async", "--priority", "low",
		"--retry-interval", "30s", "--retry-timeout", "1h", "-H", h.hostArg(), "-u", testUser, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("transfer --async: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["priority"] != "Low" || m["outcome"].(map[string]any)["result"] != "Async" ||
		m["minimumRetryDelay"] != float64(30) || m["noProgressTimeout"] != float64(3600) {
		t.Errorf("async output: %s", r.stdout)
	}
	// Seconds to the millisecond, like wait's outcome, not 0.012345678.
	if !regexp.MustCompile(`"elapsedSeconds":\d+(\.\d{1,3})?[,}]`).MatchString(r.stdout) {
		t.Errorf("async elapsedSeconds is not rounded to milliseconds: %s", r.stdout)
	}
	if r := run(t, withPassword(), "transfer", h.FilesURL+"/file.bin", local, "--retry-interval", "2s", "-H", h.hostArg(), "-u", testUser); r.code != ExitUsage ||
		!strings.Contains(r.stderr, "--retry-interval 2s: want whole seconds from 5s") {
		t.Errorf("--retry-interval 2s: exit %d: %s", r.code, r.stderr)
	}
	id := m["jobId"].(string)
	r = run(t, withPassword(), "wait", id, "--complete", "--interval", "20ms", "-H", h.hostArg(), "-u", testUser)
	if r.code != 0 {
		t.Fatalf("wait: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "Outcome:") || !strings.Contains(r.stdout, "Completed after") {
		t.Errorf("wait table output:\n%s", r.stdout)
	}
}

func TestListState(t *testing.T) {
	h := newSimHost(t)
	id1 := createSuspended(t, h, tempPath(t, "a.bin"))
	id2 := createSuspended(t, h, tempPath(t, "b.bin"))
	base := []string{"-H", h.hostArg(), "-u", testUser}

	r := run(t, withPassword(), append([]string{"list", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil {
		t.Fatalf("list -o json is not an array: %v\n%s", err, r.stdout)
	}
	got := map[string]bool{}
	for _, j := range jobs {
		got[j["jobId"].(string)] = true
	}
	if !got[id1] || !got[id2] || len(jobs) != 2 {
		t.Errorf("list = %v, want %s and %s", got, id1, id2)
	}

	r = run(t, withPassword(), append([]string{"list", "--state", "transferring,error", "-o", "json"}, base...)...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list --state transferring,error: exit %d, stdout %q", r.code, r.stdout)
	}
	r = run(t, withPassword(), append([]string{"list", "--state", "bogus"}, base...)...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, `unknown state "bogus"`) {
		t.Errorf("list --state bogus: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, withPassword(), append([]string{"list"}, base...)...)
	if !strings.HasPrefix(r.stdout, "JOBID") || !strings.Contains(r.stdout, id1) || !strings.Contains(r.stdout, "Suspended") {
		t.Errorf("list table:\n%s", r.stdout)
	}
}

func TestBadInputExitCodes(t *testing.T) {
	h := newSimHost(t)
	host := h.hostArg()
	const unknown = "{00000000-1111-2222-3333-444444444444}"
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"no host", withPassword(), []string{"list", "-u", testUser}, ExitUsage, "no host: give -H HOST"},
		{"missing password", nil, []string{"list", "-H", host, "-u", testUser}, ExitUsage, "no password: set BITSREMOTE_PASSWORD"},
		{"no user", withPassword(), []string{"list", "-H", host}, ExitUsage, "--auth ntlm needs --user"},
		{"wrong password", map[string]string{EnvPassword: "wrong"}, []string{"list", "-H", host, "-u", testUser}, ExitAuth, "rejected the credentials"},
		{"unknown job", withPassword(), []string{"get", unknown, "-H", host, "-u", testUser}, ExitFault, unknown},
		{"malformed job id", withPassword(), []string{"get", "not-a-guid", "-H", host, "-u", testUser}, ExitUsage, `job id "not-a-guid" is not a GUID`},
		{"malformed selector", withPassword(), []string{"wsman", "get", "wmicimv2/Win32_Service", "-s", "NameWinRM", "-H", host, "-u", testUser}, ExitUsage, `-s "NameWinRM": want Name=Value`},
		{"bad alias", withPassword(), []string{"wsman", "get", "nosuch/Thing", "-H", host, "-u", testUser}, ExitUsage, "neither a full URI nor an alias"},
		{"bad retries", withPassword(), []string{"list", "-H", host, "-u", testUser, "--retries", "-1"}, ExitUsage, "--retries must be from 0 to 100"},
		{"bad output", withPassword(), []string{"list", "-H", host, "-u", testUser, "-o", "yaml"}, ExitUsage, `unknown output format "yaml"`},
		{"bad priority", withPassword(), []string{"priority", unknown, "urgent", "-H", host, "-u", testUser}, ExitUsage, `unknown priority "urgent"`},
		{"unknown command", nil, []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"unknown flag", nil, []string{"list", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"wrong arg count", nil, []string{"get"}, ExitUsage, "takes 1 argument(s): JOBID"},
		{"connection refused", withPassword(), []string{"list", "-H", "127.0.0.1:1", "-u", testUser, "--timeout", "5s", "--retries", "0"}, ExitConnection, "127.0.0.1:1"},
		{"creds over plain http", map[string]string{EnvPassword: testPassword, EnvJobPassword: "jobpw"}, []string{"set-credentials", unknown, "--job-user", "svc", "--encryption", "never", "-H", host, "-u", testUser}, ExitUsage, "refusing to send a job password over http://"},
		{"transfer upload two sources", withPassword(), []string{"transfer", "/a", "/b", "http://x/up", "--type", "upload", "-H", host, "-u", testUser}, ExitUsage, "exactly one file"},
		{"transfer dest is url", withPassword(), []string{"transfer", "http://x/a", "http://x/b", "-H", host, "-u", testUser}, ExitUsage, "for an upload use --type upload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
			for _, secret := range []string{testPassword, "jobpw"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output contains a password")
				}
			}
		})
	}
}
