package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// wireDir is /work/shared/wire: real envelopes captured from Windows, read
// in place (../shared/wire from the repository root), never copied.
func wireDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Skip("cannot locate the test file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := filepath.Join(root, "..", "shared", "wire")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real envelopes not available: %v", err)
	}
	return dir
}

// wireEnvelope reads a capture without the provenance comment that heads
// each file.
func wireEnvelope(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte("<!--")) {
		if i := bytes.Index(b, []byte("-->")); i >= 0 {
			b = bytes.TrimLeft(b[i+3:], "\r\n")
		}
	}
	return b
}

// Every real envelope survives recording and replay byte for byte, and the
// compact ones are stored indented.
func TestRecordReplayRealEnvelopes(t *testing.T) {
	dir := wireDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Skipf("no envelopes in %s", dir)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".xml")
		t.Run(name, func(t *testing.T) {
			env := wireEnvelope(t, f)
			fixtures := t.TempDir()
			next := Func(func(context.Context, *Request) (*Response, error) {
				return &Response{StatusCode: 200, Header: http.Header{}, ContentType: ContentTypeSOAP, Body: bytes.Clone(env)}, nil
			})
			rec, err := NewRecorder(next, fixtures, "wire")
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{URL: "http://127.0.0.1:5985/wsman", Body: []byte(`<a/>`)}
			if _, err := rec.RoundTrip(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(filepath.Join(fixtures, "wire", "001.json"))
			if err != nil {
				t.Fatal(err)
			}
			var meta exchangeMeta
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatal(err)
			}
			inner := bytes.TrimRight(env, "\r\n")
			compact := !bytes.Contains(inner, []byte(">\n")) && !bytes.Contains(inner, []byte(">\r\n")) && !bytes.Contains(inner, []byte("> <"))
			if indented := meta.Response.Indented; indented != compact {
				t.Errorf("stored indented=%v, want %v for a compact=%v envelope", indented, compact, compact)
			}
			rp, err := NewReplayer(fixtures, "wire")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := rp.RoundTrip(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			// The request carried no MessageID, so the reply is untouched.
			if !bytes.Equal(resp.Body, env) {
				a, _ := indentXML(env)
				b, _ := indentXML(resp.Body)
				t.Errorf("replayed body differs:\n%s", lineDiff(string(a), string(b)))
			}

			// The same envelope as a request matches on replay when only its
			// MessageID and the port of wsa:To change.
			reqRec, err := NewRecorder(next, fixtures, "wire-request")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := reqRec.RoundTrip(context.Background(), &Request{URL: "http://127.0.0.1:5985/wsman", Body: env}); err != nil {
				t.Fatal(err)
			}
			rp2, err := NewReplayer(fixtures, "wire-request")
			if err != nil {
				t.Fatal(err)
			}
			moved := rewriteLeaves(env, func(ns, local, text string) (string, bool) {
				switch {
				case ns == nsAddressing && local == "MessageID":
					return "uuid:11111111-2222-4333-8444-555555555555", true
				case ns == nsAddressing && local == "To" && strings.Contains(text, "://"):
					return replaceHostWith(text, "127.0.0.1:40000"), true
				}
				return "", false
			})
			if _, err := rp2.RoundTrip(context.Background(), &Request{URL: "http://127.0.0.1:40001/wsman", Body: moved}); err != nil {
				t.Fatalf("replaying the envelope as a request: %v", err)
			}
		})
	}
}

func replaceHostWith(s, host string) string {
	return strings.Replace(replaceHost(s), hostPlaceholder, host, 1)
}
