package bitssim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
)

// TestJobSchemaIsTheInstances keeps the declared class in step with what
// a job renders: the same names in the same order.
func TestJobSchemaIsTheInstances(t *testing.T) {
	in := (&job{id: "{X}"}).instance()
	var names, declared []string
	for _, p := range in.Props {
		names = append(names, p.Name)
	}
	for _, d := range New(Config{}).Properties() {
		declared = append(declared, d.Name)
	}
	if d := cmp.Diff(declared, names); d != "" {
		t.Errorf("jobSchema (-declared +instance):\n%s", d)
	}
}

// wqlHost is a simulated host with three suspended jobs that differ in
// files, priority and description, and a Basic client for it.
type wqlHost struct {
	h    *Host
	c    *wsman.Client
	ids  []string                   // alpha, beta, gamma
	jobs map[string]*wsman.Instance // by JobId, as SELECT * lists them
}

func newWQLHost(t *testing.T) *wqlHost {
	t.Helper()
	h, c := newBasicHost(t, HostConfig{Provider: Config{TimeScale: 0.001}})
	w := &wqlHost{h: h, c: c, jobs: map[string]*wsman.Instance{}}
	dir := t.TempDir()
	addFile := func(id, name string) {
		invoke(t, h.Provider, id, "AddFile", "RemoteUrl", "http://127.0.0.1:9/"+name, "LocalFile", filepath.Join(dir, name))
	}
	a := create(t, h.Provider, "DisplayName", "alpha")
	addFile(a, "a1")
	b := create(t, h.Provider, "DisplayName", "beta", "Description", "second")
	c3 := create(t, h.Provider, "DisplayName", "gamma")
	addFile(c3, "c1")
	addFile(c3, "c2")
	in := get(t, h.Provider, c3)
	findProp(in, "Priority").Values[0].Text = "0"
	if _, err := h.Provider.Put(context.Background(), req(c3, ""), in); err != nil {
		t.Fatal(err)
	}
	w.ids = []string{a, b, c3}
	all, err := w.query("SELECT * FROM BitsClientJob")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range all {
		w.jobs[prop(t, in, "JobId")] = in
	}
	if len(w.jobs) != 3 {
		t.Fatalf("SELECT * listed %d jobs", len(all))
	}
	return w
}

// query enumerates the namespace URI with q as Get-CimInstance -Query
// does, asking for items in the EnumerateResponse.
func (w *wqlHost) query(q string) ([]*wsman.Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*wsman.Instance
	for it, err := range w.c.Enumerate(ctx, namespaceURI+"/*", wsman.EnumerateOptions{WQL: q, Optimize: true, MaxElements: 100}) {
		if err != nil {
			return out, err
		}
		out = append(out, it.Instance)
	}
	return out, nil
}

// TestWQLWhereOverTheWire: WHERE clauses on every property the fleet
// reads (bitsprov.ProgressProperties) and the others an admin filters
// on, names in any case, return exactly the matching jobs.
func TestWQLWhereOverTheWire(t *testing.T) {
	w := newWQLHost(t)
	a, b, c := w.ids[0], w.ids[1], w.ids[2]
	val := func(id, name string) string { return prop(t, w.jobs[id], name) }
	owner := val(a, "Owner")
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"State = 3", []string{a, b, c}},
		{"state = '3' and filestotal > 0", []string{a, c}},
		{"STATE <> 3", nil},
		{"BytesTotal = 18446744073709551615", []string{a, c}}, // BG_SIZE_UNKNOWN until a size is known
		{"BYTESTOTAL < 18446744073709551615", []string{b}},
		{"BytesTransferred = 0 AND TransientErrorCount = 0", []string{a, b, c}},
		{"bytestransferred > 0 OR transienterrorcount > 0", nil},
		{"FilesTransferred <> 0", nil},
		{"1 < FilesTotal", []string{c}},
		{"jobid = '" + strings.ToLower(b) + "'", []string{b}},
		{"JobId = '" + a + "' OR JOBID = \"" + c + "\"", []string{a, c}},
		{"JobLastModificationTime = " + val(b, "JobLastModificationTime"), []string{b}},
		{"joblastmodificationtime >= " + val(a, "JobLastModificationTime") + " AND JobCreationTime > 0", []string{a, b, c}},
		{"JobCompletionTime = 0", []string{a, b, c}},
		{"Priority = 0", []string{c}},
		{"NOT (priority = 0)", []string{a, b}},
		{"DisplayName LIKE '%A' AND Description = ''", []string{a, c}},
		{"description = 'SECOND'", []string{b}},
		{"Owner = '" + strings.ReplaceAll(owner, `\`, `\\`) + "'", []string{a, b, c}},
		{"MinimumRetryDelay = 600 AND NoProgressTimeout = 1209600", []string{a, b, c}},
		{"__CLASS = 'BitsClientJob' AND __RELPATH = 'BitsClientJob.JobId=\"" + b + "\"'", []string{b}},
	} {
		t.Run(tc.where, func(t *testing.T) {
			items, err := w.query("SELECT * FROM BitsClientJob WHERE " + tc.where)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range items {
				got = append(got, prop(t, in, "JobId"))
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("jobs (-want +got):\n%s", d)
			}
		})
	}
}

// TestWQLProjectionOverTheWire: the fleet's progress query comes back as
// w:XmlFragment items holding exactly those properties in the class's
// order (not the query's, as Windows answers; see wsmantest's project),
// SELECT * as the typed instances of a plain enumeration.
func TestWQLProjectionOverTheWire(t *testing.T) {
	w := newWQLHost(t)
	var raw []string
	hooked := wsman.WithReplyHook(context.Background(), func(_ string, body []byte) { raw = append(raw, string(body)) })
	q := "SELECT " + strings.Join(bitsprov.ProgressProperties(), ", ") + " FROM BitsClientJob WHERE DisplayName <> 'beta'"
	var items []*wsman.Instance
	for it, err := range w.c.Enumerate(hooked, namespaceURI+"/*", wsman.EnumerateOptions{WQL: q, Optimize: true, MaxElements: 100}) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it.Instance)
	}
	classOrder := []string{"BytesTotal", "BytesTransferred", "FilesTotal", "FilesTransferred", "JobId", "JobLastModificationTime", "State", "TransientErrorCount"}
	var want []*wsman.Instance
	for _, id := range []string{w.ids[0], w.ids[2]} {
		in := &wsman.Instance{ClassName: "XmlFragment", ResourceURI: wsman.NsWSMan, Fragment: true}
		for _, name := range classOrder {
			in.Props = append(in.Props, *findProp(w.jobs[id], name))
		}
		want = append(want, in)
	}
	if d := cmp.Diff(want, items); d != "" {
		t.Errorf("projected items (-want +got):\n%s", d)
	}
	// The fragment's children are unqualified, as in the 2012 capture.
	a := w.jobs[w.ids[0]]
	frag := `<w:XmlFragment xmlns:w="` + wsman.NsWSMan + `"><BytesTotal>18446744073709551615</BytesTotal><BytesTransferred>0</BytesTransferred>` +
		`<FilesTotal>1</FilesTotal><FilesTransferred>0</FilesTransferred><JobId>` + w.ids[0] + `</JobId><JobLastModificationTime>` +
		prop(t, a, "JobLastModificationTime") + `</JobLastModificationTime><State>3</State><TransientErrorCount>0</TransientErrorCount></w:XmlFragment>`
	if wire := strings.Join(raw, ""); !strings.Contains(wire, frag) {
		t.Errorf("replies lack %s:\n%s", frag, wire)
	}

	all, err := w.query("select * from bitsclientjob")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Fragment || all[0].ClassName != "BitsClientJob" || len(all[0].Props) != len(jobSchema) {
		t.Errorf("SELECT *: %d items, first %s fragment=%v with %d properties", len(all), all[0].ClassName, all[0].Fragment, len(all[0].Props))
	}
}

// invalidQuery is the fault the client reads for a query WMI refuses on
// host SIM01 (wsmantest's faultInvalidQuery): n:CannotProcessFilter in
// the shape of the 2008 R2 capture, WBEM_E_INVALID_QUERY in the
// __ExtendedStatus of root\microsoft\bits.
func invalidQuery(q string) *wsman.Fault {
	text := func(s string) []wsman.Value { return []wsman.Value{{Text: s}} }
	return &wsman.Fault{
		Operation: "Enumerate", HTTPStatus: 500, Action: wsman.ActionFaultEnumeration,
		Code: "Sender", SubcodeNS: wsman.NsEnumeration, Subcode: "CannotProcessFilter",
		Reason:    "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.",
		WSManCode: 2150858778, Machine: "SIM01",
		ProviderFault: &wsman.ProviderFault{Provider: "WMI Provider", Path: `%systemroot%\system32\WsmWmiPl.dll`,
			Text: "The WS-Management service cannot process the request. The WQL query is invalid.", WSManCode: 2150858778},
		WMIError: &wsman.Instance{ClassName: "__ExtendedStatus", ResourceURI: namespaceURI + "/__ExtendedStatus", TypeName: "__ExtendedStatus_Type",
			Props: []wsman.Property{
				{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
				{Name: "Operation", Values: text("ExecQuery")},
				{Name: "ParameterInfo", Values: text(q)},
				{Name: "ProviderName", Values: text("WinMgmt")},
				{Name: "StatusCode", Values: text(fmt.Sprint(uint32(0x80041017)))},
			}},
	}
}

// wireFault returns the fault err carries, without the client's host.
func wireFault(t *testing.T, err error) *wsman.Fault {
	t.Helper()
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a fault", err)
	}
	f.Host = ""
	return f
}

// TestWQLInvalidOverTheWire: a name BitsClientJob lacks, in the property
// list or anywhere in WHERE, is refused as WMI refuses it, with one
// fault whatever the place, before any job is listed and without an
// enumeration context; the queue is untouched.
func TestWQLInvalidOverTheWire(t *testing.T) {
	w := newWQLHost(t)
	for _, q := range []string{
		"SELECT * FROM BitsClientJob WHERE NoSuchProp = 1",
		"SELECT * FROM BitsClientJob WHERE nosuchprop = 1",
		"SELECT * FROM BitsClientJob WHERE 3 = Stat",
		"SELECT * FROM BitsClientJob WHERE State = 3 AND RemoteUrl = 'http://x/a'", // a BitsClientFile property
		"SELECT * FROM BitsClientJob WHERE State = 3 OR Foo = 1",
		"SELECT * FROM BitsClientJob WHERE NOT (Foo IS NULL)",
		"SELECT * FROM BitsClientJob WHERE (State = 3 OR (Priority = 0 AND Foo <> 'x'))",
		"SELECT JobId, Foo FROM BitsClientJob",
		"SELECT jobid, STATE, Foo FROM BitsClientJob WHERE State = 3",
		"SELECT JobId, State FROM BitsClientJob WHERE Foo = 1",
		"SELECT JobId, Stat, BytesTotal FROM BitsClientJob", // the progress query with a typo
		"SELECT __RELPATH FROM BitsClientJob",               // see wsmantest's check
		"SELECT * FROM BitsClientJob WHERE Files.RemoteUrl = 'x'",
		"SELECT * FROM BitsClientJob WHERE",
	} {
		t.Run(q, func(t *testing.T) {
			items, err := w.query(q)
			if len(items) != 0 {
				t.Errorf("%d jobs listed before the fault", len(items))
			}
			f := wireFault(t, err)
			if d := cmp.Diff(invalidQuery(q), f); d != "" {
				t.Errorf("fault (-want +got):\n%s", d)
			}
			if n := w.h.Server.Enumerations(); n != 0 {
				t.Errorf("%d enumeration contexts live", n)
			}
		})
	}
	all, err := w.query("SELECT JobId FROM BitsClientJob")
	if err != nil || len(all) != 3 {
		t.Errorf("after the refusals: %d jobs, %v", len(all), err)
	}

	t.Run("unknown class", func(t *testing.T) {
		const q = "SELECT Foo FROM Win32_Process WHERE Bar = 1"
		_, err := w.query(q)
		f := wireFault(t, err)
		want := invalidQuery(q)
		want.ProviderFault.Text = "The specified class does not exist in the given namespace."
		want.WMIError.Props[4].Values = []wsman.Value{{Kind: wsman.KindNil}}
		if d := cmp.Diff(want, f); d != "" {
			t.Errorf("fault (-want +got):\n%s", d)
		}
	})
	t.Run("provider not installed", func(t *testing.T) {
		// Without the BITS provider the namespace is missing, which WMI
		// reports before it looks at the query's names.
		w.h.SetProviderInstalled(false)
		defer w.h.SetProviderInstalled(true)
		_, err := w.query("SELECT * FROM BitsClientJob WHERE Foo = 1")
		f := wireFault(t, err)
		if f.Subcode != "InternalError" || f.WSManCode != codeInvalidNamespace || f.ProviderFault == nil || f.ProviderFault.Text != "Invalid namespace" {
			t.Errorf("fault %+v", f)
		}
	})
}
