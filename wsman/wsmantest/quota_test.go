package wsmantest_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// openEnumBody is a non-optimized Enumerate: it always leaves a context.
const openEnumBody = `<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"></n:Enumerate>`

var enumCtxRe = regexp.MustCompile(`<n:EnumerationContext>(uuid:[^<]+)</n:EnumerationContext>`)

// enumAs sends a raw Enumerate (or, with enumCtx set, a Release or Pull)
// as user and returns the reply.
func enumAs(t *testing.T, s *wsmantest.Server, user, action, body string) rawReply {
	t.Helper()
	env := strings.Replace(fmt.Sprintf(getEnvelope, widgetURI, action, "x", body), `<w:SelectorSet><w:Selector Name="Name">x</w:Selector></w:SelectorSet>`, "", 1)
	return post(t, "POST", s.URL, user, env, nil)
}

// openEnum opens a context as user and returns its id, failing the test
// on any other answer.
func openEnum(t *testing.T, s *wsmantest.Server, user string) string {
	t.Helper()
	r := enumAs(t, s, user, wsman.ActionEnumerate, openEnumBody)
	m := enumCtxRe.FindStringSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("Enumerate as %s: %d %s", user, r.status, r.body)
	}
	return m[1]
}

func releaseBody(id string) string {
	return `<n:Release xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><n:EnumerationContext>` + id + `</n:EnumerationContext></n:Release>`
}

func pullBody(id string) string {
	return `<n:Pull xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><n:EnumerationContext>` + id + `</n:EnumerationContext><n:MaxElements>100</n:MaxElements></n:Pull>`
}

const quotaMessage3 = "The WS-Management service cannot process the request. This user is allowed a maximum number of 3 concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. "

// wantQuotaFault checks r is the MaxConcurrentOperationsPerUser fault for a
// quota of 3, exactly as parsed by the client.
func wantQuotaFault(t *testing.T, r rawReply) {
	t.Helper()
	if r.status != 500 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	c := &wsman.Client{}
	err := c.CheckReply("Enumerate", &transport.Response{StatusCode: r.status, Header: r.header, ContentType: r.header.Get("Content-Type"), Body: []byte(r.body)})
	f := asFault(t, err)
	want := &wsman.Fault{
		HTTPStatus: 500,
		Code:       "Receiver",
		SubcodeNS:  wsman.NsWSMan,
		Subcode:    "InternalError",
		Reason:     "The WS-Management service cannot process the request. The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user.",
		WSManCode:  0x803381A6,
		Machine:    wsmantest.DefaultMachine,
		Message:    strings.TrimSpace(quotaMessage3),
	}
	// Host and Operation come from the request, Action from the envelope.
	f.Host, f.Operation = "", ""
	want.Action = wsman.ActionFaultWSMan
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("fault (-want +got):\n%s", diff)
	}
}

// TestMaxOperationsPerUser checks the MaxConcurrentOperationsPerUser quota
// over live enumeration contexts: Windows refuses a new Enumerate from a
// user holding that many, so a client that never Releases cannot pass.
func TestMaxOperationsPerUser(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		s, _ := newServer(t, wsmantest.Config{}, 0)
		if got := s.Config().MaxOperationsPerUser; got != 1500 {
			t.Errorf("default MaxOperationsPerUser = %d, want 1500", got)
		}
	})

	newQuotaServer := func(t *testing.T) *wsmantest.Server {
		s, _ := newServer(t, wsmantest.Config{MaxOperationsPerUser: 3, Users: map[string]string{testUser: testPass, "other": testPass}}, 5)
		return s
	}
	fill := func(t *testing.T, s *wsmantest.Server, user string) []string {
		var ids []string
		for range 3 {
			ids = append(ids, openEnum(t, s, user))
		}
		return ids
	}
	t.Run("fourth refused", func(t *testing.T) {
		s := newQuotaServer(t)
		fill(t, s, testUser)
		wantQuotaFault(t, enumAs(t, s, testUser, wsman.ActionEnumerate, openEnumBody))
		// Optimized Enumerates that would finish in one go are operations
		// too: refused as well.
		opt := `<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>`
		wantQuotaFault(t, enumAs(t, s, testUser, wsman.ActionEnumerate, opt))
		if n := s.Enumerations(); n != 3 {
			t.Errorf("live contexts = %d, want 3", n)
		}
	})
	t.Run("per user, domain form is the same user", func(t *testing.T) {
		s := newQuotaServer(t)
		fill(t, s, testUser)
		openEnum(t, s, "other")
		wantQuotaFault(t, enumAs(t, s, `LOCALHOST\ADMIN`, wsman.ActionEnumerate, openEnumBody))
	})
	t.Run("released context frees a slot", func(t *testing.T) {
		s := newQuotaServer(t)
		ids := fill(t, s, testUser)
		if r := enumAs(t, s, testUser, wsman.ActionRelease, releaseBody(ids[1])); r.status != 200 {
			t.Fatalf("Release: %d %s", r.status, r.body)
		}
		openEnum(t, s, testUser)
		wantQuotaFault(t, enumAs(t, s, testUser, wsman.ActionEnumerate, openEnumBody))
	})
	t.Run("finished context frees a slot", func(t *testing.T) {
		s := newQuotaServer(t)
		ids := fill(t, s, testUser)
		r := enumAs(t, s, testUser, wsman.ActionPull, pullBody(ids[0]))
		if r.status != 200 || !strings.Contains(r.body, "<n:EndOfSequence/>") {
			t.Fatalf("Pull: %d %s", r.status, r.body)
		}
		openEnum(t, s, testUser)
	})
	t.Run("Pull keeps the slot", func(t *testing.T) {
		s := newQuotaServer(t)
		ids := fill(t, s, testUser)
		r := enumAs(t, s, testUser, wsman.ActionPull, strings.Replace(pullBody(ids[0]), "100", "1", 1))
		if r.status != 200 || strings.Contains(r.body, "EndOfSequence") {
			t.Fatalf("Pull: %d %s", r.status, r.body)
		}
		wantQuotaFault(t, enumAs(t, s, testUser, wsman.ActionEnumerate, openEnumBody))
	})
	t.Run("expired contexts do not count", func(t *testing.T) {
		s := newQuotaServer(t)
		fill(t, s, testUser)
		s.ExpireEnumerations()
		fill(t, s, testUser)
		wantQuotaFault(t, enumAs(t, s, testUser, wsman.ActionEnumerate, openEnumBody))
	})
}

// TestMaxOperationsFaultShape compares the quota fault with the one
// captured from Windows, attribute names sorted (the capture was
// re-serialised by its repository).
func TestMaxOperationsFaultShape(t *testing.T) {
	want := readWire(t, "fault-w-InternalError-quota-max-concurrent-operations.xml")
	s, _ := newServer(t, wsmantest.Config{MaxOperationsPerUser: 1}, 1)
	openEnum(t, s, testUser)
	got := enumAs(t, s, testUser, wsman.ActionEnumerate, openEnumBody).body
	// The capture is pretty-printed: its code values carry indentation.
	trim := cmp.Transformer("trim", func(l string) string { return strings.Join(strings.Fields(l), "") })
	if diff := cmp.Diff(shapeWith(t, want, true), shapeWith(t, []byte(got), true), trim); diff != "" {
		t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
	}
	for _, frag := range []string{
		`<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request. The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user. </s:Text></s:Reason>`,
		`<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150859174" Machine="localhost"><f:Message>` +
			`The WS-Management service cannot process the request. This user is allowed a maximum number of 1 concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. </f:Message></f:WSManFault>`,
	} {
		if !strings.Contains(got, frag) {
			t.Errorf("missing %s in %s", frag, got)
		}
	}
}

// TestClientReleasesUnderQuota runs more abandoned enumerations than the
// quota allows through the real client: each early break must Release.
func TestClientReleasesUnderQuota(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{MaxOperationsPerUser: 2}, 5)
	c := newClient(t, s, "basic", testPass, nil)
	for i := range 5 {
		for it, err := range c.Enumerate(context.Background(), widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 1}) {
			if err != nil {
				t.Fatalf("enumeration %d: %v", i, err)
			}
			_ = it
			break
		}
	}
	if n := s.Enumerations(); n != 0 {
		t.Errorf("live contexts = %d, want 0", n)
	}
}

// TestClientReleasesAfterFailedPull checks that an enumeration ended by a
// Pull error whose context the host still holds (the Pull never reached
// it, or it answered n:TimedOut, which leaves the context valid) is
// Released: otherwise each such failure holds one of the user's
// MaxConcurrentOperationsPerUser slots until EnumerationTimeoutms.
func TestClientReleasesAfterFailedPull(t *testing.T) {
	tests := []struct {
		name string
		inj  wsmantest.Injection
		n    int
	}{
		{"dropped Pull", wsmantest.Injection{Kind: wsmantest.InjectDrop, Action: wsman.ActionPull}, 1},
		{"Pull timed out every time", wsmantest.Injection{Kind: wsmantest.InjectFault, Action: wsman.ActionPull, Fault: wsmantest.FaultTimedOut()}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, wsmantest.Config{MaxOperationsPerUser: 1}, 5)
			c := newClient(t, s, "basic", testPass, nil)
			s.Inject(tt.inj, tt.n)
			var err error
			for _, e := range c.Enumerate(context.Background(), widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 1}) {
				err = e
			}
			if err == nil {
				t.Fatal("enumeration succeeded despite the injected failure")
			}
			if n := s.Enumerations(); n != 0 {
				t.Errorf("after %v: live contexts = %d, want 0 (the client did not Release)", err, n)
			}
		})
	}
	t.Run("caller cancelled between pages", func(t *testing.T) {
		s, _ := newServer(t, wsmantest.Config{MaxOperationsPerUser: 1}, 5)
		c := newClient(t, s, "basic", testPass, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var err error
		for _, e := range c.Enumerate(ctx, widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 1}) {
			cancel() // the next Pull fails before it is sent
			err = e
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := s.Enumerations(); n != 0 {
			t.Errorf("live contexts = %d, want 0 (the client did not Release)", n)
		}
	})
}
