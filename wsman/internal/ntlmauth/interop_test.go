package ntlmauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/pywinrmtest"
)

// TestPywinrmInterop runs pywinrm 0.3.0 (transport ntlm, message_encryption
// always) against the middleware with RequireEncryption: its NEGOTIATE
// lacks UNICODE, it needs a 2xx priming POST, and it seals with its own
// NTLM code, so this checks both directions against an independent
// implementation.
func TestPywinrmInterop(t *testing.T) {
	env := pywinrmtest.Require(t)

	var mu sync.Mutex
	var raw []string  // request bodies as they came off the wire
	var seen []string // plaintext envelopes the inner handler received
	num := regexp.MustCompile(`<p:Echo>(echo|fault) (\d+)</p:Echo>`)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, _ := UserFromContext(r.Context())
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s encrypted=%v %s", user, EncryptedFromContext(r.Context()), body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
		m := num.FindSubmatch(body)
		if m == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if string(m[1]) == "fault" {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">sim: no job %s</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="sim"><f:Message>sim: no job</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`, m[2])
			return
		}
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>reply %s</s:Body></s:Envelope>`, m[2])
	})
	srv := testServer()
	mw := srv.Middleware(inner, MiddlewareOptions{RequireEncryption: true})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		raw = append(raw, string(body))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		mw.ServeHTTP(w, r)
	}))
	ts.Config.ConnContext = srv.ConnContext
	ts.Start()
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	const count = 4
	cmd := exec.CommandContext(ctx, pywinrmtest.Python, filepath.Join("testdata", "pywinrm_sealed.py"), ts.URL+"/wsman", "alice", "S3cret!pw", fmt.Sprint(count))
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pywinrm: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}

	var got []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("pywinrm output line %q: %v", line, err)
		}
		got = append(got, m)
	}
	var want []map[string]any
	for i := range count - 1 {
		want = append(want, map[string]any{"i": float64(i), "reply": fmt.Sprintf(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>reply %d</s:Body></s:Envelope>`, i)})
	}
	want = append(want,
		map[string]any{"i": float64(count - 1), "fault": "sim: no job 3 (extended fault data: {'transport_message': 'Bad HTTP response returned from server. Code 500', 'http_status_code': 500, 'wsmanfault_code': '2150858843', 'fault_code': 's:Sender', 'fault_subcode': 'w:InvalidSelectors'})"},
		map[string]any{"wrong_password": "InvalidCredentialsError"},
	)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pywinrm results (-want +got):\n%s\nstderr:\n%s", diff, stderr.Bytes())
	}

	mu.Lock()
	defer mu.Unlock()
	for i := range count {
		kind := "echo"
		if i == count-1 {
			kind = "fault"
		}
		wantSeen := fmt.Sprintf(`alice encrypted=true <s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:p="urn:bitsremote:test"><s:Header/><s:Body><p:Echo>%s %d</p:Echo></s:Body></s:Envelope>`, kind, i)
		if i >= len(seen) || seen[i] != wantSeen {
			t.Fatalf("inner handler saw %q, want %q", seen, wantSeen)
		}
	}
	if len(seen) != count {
		t.Fatalf("inner handler ran %d times, want %d (the wrong-password logon must not reach it)", len(seen), count)
	}
	for i, b := range raw {
		if b != "" && !strings.HasPrefix(b, "--Encrypted Boundary\r\n") {
			t.Errorf("request %d from pywinrm was not sealed: %.80q", i, b)
		}
		if strings.Contains(b, "p:Echo") {
			t.Errorf("request %d carries the envelope in clear", i)
		}
	}
}
