package leakcheck

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRunningFindsHTTPLeaks: a server left open and a client's kept-alive
// connection are found although no frame of ours is in their stacks,
// and are gone once closed.
func TestRunningFindsHTTPLeaks(t *testing.T) {
	const marker = "no frame has this marker"
	if g := running(marker); len(g) != 0 {
		t.Fatalf("before the test: %d goroutines found:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	found := strings.Join(running(marker), "\n\n")
	for _, want := range []string{"net/http.(*Server).Serve", "net/http.(*conn).serve", "net/http.(*persistConn).readLoop"} {
		if !strings.Contains(found, want) {
			t.Errorf("the open server and connection's goroutines lack %s:\n%s", want, found)
		}
	}
	tr.CloseIdleConnections()
	srv.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		g := running(marker)
		if len(g) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing: %d goroutines found:\n%s", len(g), strings.Join(g, "\n\n"))
		}
	}
}
