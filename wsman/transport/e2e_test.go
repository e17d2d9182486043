package transport_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
	"github.com/google/go-cmp/cmp"
)

const jobURI = wsman.ResourceWMI + "/root/test/Job"

// jobs serves class Job (key Name): Get finds "j1" only; SetCredentials
// answers ReturnValue 0.
type jobs struct{}

func (jobs) Keys() []string { return []string{"Name"} }

func (jobs) Get(_ context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	for _, s := range r.Selectors {
		if s.Name == "Name" && s.Value == "j1" {
			in := wsman.NewInstance(jobURI)
			in.Set("Name", "j1")
			in.Set("AdminPasswordStatus", "3")
			return in, nil
		}
	}
	return nil, wsmantest.FaultNotFound("")
}

func (jobs) Put(context.Context, *wsmantest.Request, *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultInternalError("not supported", 1)
}

func (jobs) Invoke(_ context.Context, _ *wsmantest.Request, method string, _ *wsman.Instance) (*wsman.Instance, error) {
	out := wsman.NewInstance(jobURI)
	out.Set("ReturnValue", "0")
	return out, nil
}

func (jobs) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	return nil, nil
}

// run drives the same calls through c and returns what they gave.
func run(t *testing.T, c *wsman.Client) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	id, err := c.Identify(ctx)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	out = append(out, "identify "+id.ProductVendor)
	in, err := c.Get(ctx, jobURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "j1"}}})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	name, _ := in.String("Name")
	status, _ := in.String("AdminPasswordStatus")
	out = append(out, "get "+name+" "+status)
	_, err = c.Get(ctx, jobURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "nope"}}})
	out = append(out, "get missing: not found="+boolString(wsman.IsNotFound(err)))
	input := wsman.NewInstance(jobURI)
	input.Set("UserName", "svc")
	input.Set("Password", "Pr0xy-S3cret")
	res, err := c.Invoke(ctx, jobURI, "SetCredentials", wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "j1"}}}, input)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	rv, _ := res.String("ReturnValue")
	out = append(out, "invoke "+rv)
	return out
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Recording real wsman.Client traffic and replaying it to a client on
// another port gives the same results, and the client's RelatesTo and
// Action checks pass on the replayed replies.
func TestRecordReplayWSManClient(t *testing.T) {
	const password = "Adm1n-S3cret"
	srv := wsmantest.NewUnstartedServer(wsmantest.Config{Users: map[string]string{"admin": password}})
	srv.Handle(jobURI, jobs{}, "Name")
	srv.Start()
	defer srv.Close()

	basic, err := transport.NewBasic(transport.Config{User: "admin", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rec, err := transport.NewRecorder(basic, dir, "client/basic", password)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.CloseIdleConnections()
	live := run(t, wsman.NewClient(srv.URL, rec))
	want := []string{"identify Microsoft Corporation", "get j1 3", "get missing: not found=true", "invoke 0"}
	if diff := cmp.Diff(want, live); diff != "" {
		t.Fatalf("live (-want +got):\n%s", diff)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "client", "basic", "*"))
	if len(files) != 12 {
		t.Errorf("recorded %d files, want 12 (4 exchanges)", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{password, "Pr0xy-S3cret"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s contains %q", filepath.Base(f), secret)
			}
		}
	}

	rp, err := transport.NewReplayer(dir, "client/basic", password)
	if err != nil {
		t.Fatal(err)
	}
	replayed := run(t, wsman.NewClient("http://127.0.0.1:1/wsman", rp))
	if diff := cmp.Diff(want, replayed); diff != "" {
		t.Errorf("replayed (-want +got):\n%s", diff)
	}
	if err := rp.Verify(); err != nil {
		t.Error(err)
	}
}
