package bitsprov_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
	"github.com/google/go-cmp/cmp"
)

// The view path (wsman.Client.EnumerateViews and JobFromView, which
// Client.Jobs uses) must give, item by item, the job or the error that
// JobFromInstance gives for the Instance that Enumerate yields. These
// tests run both over the same replies: the simulator's jobs, the
// recorded fixtures, hand-made pages with every odd shape, and fuzzed
// items.

// decoded is what one item decodes to: a job or the text of an error.
type decoded struct {
	Job *bitsprov.Job
	Err string
}

// decodeBoth replays the replies of one enumeration (answered in order
// by answer) through Enumerate + JobFromInstance and through
// EnumerateViews + JobFromView (JobFromInstance for the items views do
// not cover), and returns both outcomes and how many items were viewed.
func decodeBoth(t testing.TB, answer func() transport.Transport) (inst, view []decoded, viewed int) {
	t.Helper()
	ctx := context.Background()
	opts := wsman.EnumerateOptions{Optimize: true, MaxElements: 32000}
	record := func(out *[]decoded) func(*bitsprov.Job, error) {
		return func(j *bitsprov.Job, err error) {
			d := decoded{Job: j}
			if err != nil {
				// An error quoting the reply quotes its RelatesTo,
				// each client's own MessageID.
				d.Err = msgID.ReplaceAllString(err.Error(), "uuid:ID")
			}
			*out = append(*out, d)
		}
	}
	client := func() *wsman.Client {
		c := wsman.NewClient("http://srv1:5985/wsman", answer())
		// A reply that does not parse is an error, not a pause.
		c.Retry = wsman.NoRetry
		return c
	}
	c := client()
	for item, err := range c.Enumerate(ctx, bitsprov.ResourceURI, opts) {
		if err != nil {
			record(&inst)(nil, err)
			break
		}
		if item.Instance == nil {
			record(&inst)(nil, nil)
			continue
		}
		record(&inst)(bitsprov.JobFromInstance(item.Instance))
	}
	c = client()
	for v, err := range c.EnumerateViews(ctx, bitsprov.ResourceURI, opts) {
		switch {
		case err != nil:
			record(&view)(nil, err)
		case v.Object.Valid():
			viewed++
			record(&view)(bitsprov.JobFromView(v.Object))
		case v.Item.Instance == nil:
			record(&view)(nil, nil)
		default:
			record(&view)(bitsprov.JobFromInstance(v.Item.Instance))
		}
		if err != nil {
			break
		}
	}
	return inst, view, viewed
}

var msgID = regexp.MustCompile(`uuid:[0-9A-Fa-f-]{36}`)

var relatesTo = regexp.MustCompile(`(<a:RelatesTo>)[^<]*(</a:RelatesTo>)`)

// replies answers each request with the next body, its a:RelatesTo set to
// the request's MessageID; past the last it answers a Pull with an empty
// last page and anything else (Release) with a ReleaseResponse.
func replies(bodies ...[]byte) func() transport.Transport {
	return func() transport.Transport {
		next := 0
		return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			id := messageID(req.Body)
			var body []byte
			switch {
			case next < len(bodies):
				body = bodies[next]
				next++
			case bytes.Contains(req.Body, []byte("/Pull</a:Action>")):
				body = envelope(wsman.ActionPullResponse, `<n:PullResponse><n:EndOfSequence/></n:PullResponse>`)
			default:
				body = envelope(wsman.ActionReleaseResponse, ``)
			}
			body = relatesTo.ReplaceAll(body, []byte("${1}"+id+"${2}"))
			return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml;charset=UTF-8", Body: body}, nil
		})
	}
}

func envelope(action, body string) []byte {
	return []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">` +
		`<s:Header><a:Action>` + action + `</a:Action><a:RelatesTo>x</a:RelatesTo></s:Header><s:Body>` + body + `</s:Body></s:Envelope>`)
}

// page is an optimized EnumerateResponse holding items, complete.
func page(items string) []byte {
	return envelope(wsman.ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext/><w:Items>`+items+`</w:Items><w:EndOfSequence/></n:EnumerateResponse>`)
}

// checkSame fails unless both paths decoded the same, and (wantViewed
// >= 0) the view path viewed that many items.
func checkSame(t testing.TB, inst, view []decoded, viewed, wantViewed int) {
	t.Helper()
	if diff := cmp.Diff(inst, view); diff != "" {
		t.Fatalf("views decode differently from instances (-instances +views):\n%s", diff)
	}
	if wantViewed >= 0 && viewed != wantViewed {
		t.Fatalf("%d items viewed, want %d", viewed, wantViewed)
	}
}

const (
	jobOpen  = `<p:BitsClientJob xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xsi:type="p:BitsClientJob_Type">`
	jobClose = `</p:BitsClientJob>`
	fileOpen = `<p:BitsClientFile xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:BitsClientFile_Type">`
	aFile    = `<p:Files>` + fileOpen + `<p:BytesTotal>10</p:BytesTotal><p:BytesTransferred>4</p:BytesTransferred><p:Completed>false</p:Completed><p:LocalFile>C:\a.bin</p:LocalFile><p:RemoteUrl>http://h/a.bin</p:RemoteUrl></p:BitsClientFile></p:Files>`
	jobID    = `<p:JobId>{3FE1F930-99B7-416D-AF1D-47DABA1EAD6E}</p:JobId>`
	// restOfJob are the job's other properties as Windows sends them.
	restOfJob = `<p:BytesTotal>18446744073709551615</p:BytesTotal><p:BytesTransferred>0</p:BytesTransferred><p:Description>d</p:Description><p:DisplayName>one</p:DisplayName>` +
		`<p:FilesTotal>1</p:FilesTotal><p:FilesTransferred>0</p:FilesTransferred><p:JobCompletionTime>0</p:JobCompletionTime><p:JobCreationTime>134397270000000000</p:JobCreationTime>` +
		`<p:JobLastModificationTime>134397270000000000</p:JobLastModificationTime><p:MinimumRetryDelay>600</p:MinimumRetryDelay><p:NoProgressTimeout>1209600</p:NoProgressTimeout>` +
		`<p:Owner>NT AUTHORITY\NETWORK SERVICE</p:Owner><p:Priority>2</p:Priority><p:State>3</p:State><p:TransientErrorCount>0</p:TransientErrorCount>`
)

// xjob is a BitsClientJob item holding props.
func xjob(props string) string { return jobOpen + props + jobClose }

// oddJobs are items in every shape the decoders treat specially, each
// with the number of items the view path is expected to view (-1: the
// reply is not for the views, whatever they count).
var oddJobs = []struct {
	name, items string
	viewed      int
}{
	{"windows job", xjob(restOfJob + aFile + jobID), 1},
	{"no files", xjob(restOfJob + jobID), 1},
	{"three files", xjob(jobID + aFile + aFile + `<p:Other>x</p:Other>` + aFile), 1},
	{"nil values", xjob(jobID + `<p:Description xsi:nil="true"/><p:BytesTotal xsi:nil="true"/><p:Files xsi:nil="true"/><p:State xsi:nil="1"/><p:Type xsi:nil=" true "/>`), 1},
	{"nil file among files", xjob(jobID + aFile + `<p:Files xsi:nil="true"/>` + aFile), 1},
	{"nil file properties", xjob(jobID + `<p:Files>` + fileOpen + `<p:BytesTotal xsi:nil="true"/><p:Completed xsi:nil="true"/><p:RemoteUrl xsi:nil="true"/></p:BitsClientFile></p:Files>`), 1},
	{"empty file object", xjob(jobID + `<p:Files>` + fileOpen + `</p:BitsClientFile></p:Files>`), 1},
	{"untyped empty file", xjob(jobID + `<p:Files><p:BitsClientFile/></p:Files>`), 1},
	{"file in the property element", xjob(jobID + `<p:Files xsi:type="p:BitsClientFile_Type"><p:RemoteUrl>http://h/x</p:RemoteUrl><p:BytesTotal>7</p:BytesTotal><p:Completed>TRUE</p:Completed></p:Files>`), 1},
	{"untyped file in the property element", xjob(jobID + `<p:Files><p:RemoteUrl>http://h/x</p:RemoteUrl><p:LocalFile>x</p:LocalFile></p:Files>`), 1},
	{"file property holding text", xjob(jobID + `<p:Files>text</p:Files>`), 1},
	{"file property holding a datetime", xjob(jobID + `<p:Files><cim:Datetime>2020-01-01T00:00:00Z</cim:Datetime></p:Files>`), 1},
	{"file with bad size", xjob(jobID + `<p:Files>` + fileOpen + `<p:BytesTotal>-1</p:BytesTotal></p:BitsClientFile></p:Files>`), 1},
	{"file with bad completed", xjob(jobID + `<p:Files>` + fileOpen + `<p:Completed>yes</p:Completed></p:BitsClientFile></p:Files>`), 1},
	{"file with two urls", xjob(jobID + `<p:Files>` + fileOpen + `<p:RemoteUrl>a</p:RemoteUrl><p:RemoteUrl>b</p:RemoteUrl></p:BitsClientFile></p:Files>`), 1},
	{"second file bad", xjob(jobID + aFile + `<p:Files>` + fileOpen + `<p:BytesTransferred>x</p:BytesTransferred></p:BitsClientFile></p:Files>`), 1},
	{"no JobId", xjob(restOfJob), 1},
	{"nil JobId", xjob(`<p:JobId xsi:nil="true"/>` + restOfJob), 1},
	{"two JobIds", xjob(jobID + restOfJob + jobID), 1},
	{"array of states", xjob(jobID + `<p:State>1</p:State><p:State>2</p:State>`), 1},
	{"state not a number", xjob(jobID + `<p:State>running</p:State>`), 1},
	{"state too wide", xjob(jobID + `<p:State>65536</p:State>`), 1},
	{"type", xjob(jobID + `<p:Type>1</p:Type>`), 1},
	{"type too wide", xjob(jobID + `<p:Type>70000</p:Type>`), 1},
	{"priority as a datetime", xjob(jobID + `<p:Priority><cim:Datetime>2020-01-01T00:00:00Z</cim:Datetime></p:Priority>`), 1},
	{"owner as an interval", xjob(jobID + `<p:Owner><cim:Interval>P1D</cim:Interval></p:Owner>`), 1},
	{"description as an object", xjob(jobID + `<p:Description><p:X><p:Y>1</p:Y></p:X></p:Description>`), 1},
	{"description with two children", xjob(jobID + `<p:Description><p:X>1</p:X><p:Y>2</p:Y></p:Description>`), 1},
	{"names in other cases", xjob(`<p:jobid>{A}</p:jobid><p:STATE>2</p:STATE><p:State>9</p:State><p:displayname>x</p:displayname><p:files>` + fileOpen + `<p:remoteurl>u</p:remoteurl><p:COMPLETED>1</p:COMPLETED></p:BitsClientFile></p:files>`), 1},
	{"case variant after exact", xjob(jobID + `<p:State>4</p:State><p:state>x</p:state>`), 1},
	{"repeat not adjacent", xjob(jobID + `<p:State>4</p:State><p:Owner>o</p:Owner><p:State>5</p:State>`), 1},
	{"cim location skipped", xjob(`<cim:Location>x</cim:Location>` + jobID + `<p:Location>y</p:Location>`), 1},
	{"text split and escaped", xjob(`<p:JobId>{A<!-- c -->B}</p:JobId><p:DisplayName>a &amp; b<![CDATA[ <c> ]]>&#x41;</p:DisplayName><p:State> 3 </p:State><p:Description>x&#13;y` + "\r\n" + `z</p:Description>`), 1},
	{"whitespace between properties", xjob("\n  " + jobID + "\n  <p:State>2</p:State>\n"), 1},
	{"other namespace", `<q:BitsClientJob xmlns:q="urn:other">` + `<q:JobId>{B}</q:JobId><r:State xmlns:r="urn:r">4</r:State></q:BitsClientJob>`, 1},
	{"empty item", `<p:BitsClientJob xmlns:p="urn:p"/>`, 1},
	{"several jobs", xjob(jobID+`<p:State>1</p:State>`) + xjob(`<p:JobId>{C}</p:JobId>`+aFile) + xjob(restOfJob), 3},
	{"uint64 limits", xjob(jobID + `<p:BytesTotal>18446744073709551614</p:BytesTotal><p:BytesTransferred>18446744073709551616</p:BytesTransferred>`), 1},
	// Pages the views do not cover: the items come as Enumerate's.
	{"reference property", xjob(jobID + `<p:Ref><a:Address>x</a:Address><a:ReferenceParameters><w:ResourceURI>u</w:ResourceURI><w:SelectorSet><w:Selector Name="k">v</w:Selector></w:SelectorSet></a:ReferenceParameters></p:Ref>`), 0},
	{"reference without a selector name", xjob(jobID + `<p:Ref><a:Address>x</a:Address><a:ReferenceParameters><w:SelectorSet><w:Selector>v</w:Selector></w:SelectorSet></a:ReferenceParameters></p:Ref>`), 0},
	{"object and EPR", `<w:Item>` + xjob(jobID) + `<a:EndpointReference><a:Address>x</a:Address></a:EndpointReference></w:Item>`, 0},
	{"w:Item without EPR", `<w:Item>` + xjob(jobID) + `</w:Item>`, 0},
	{"EPR only", `<a:EndpointReference><a:Address>x</a:Address></a:EndpointReference>`, 0},
	{"left to etree", xjob(jobID + `<p:Nämе>x</p:Nämе>`), 0},
}

func TestJobFromViewIsJobFromInstance(t *testing.T) {
	for _, tc := range oddJobs {
		t.Run(tc.name, func(t *testing.T) {
			inst, view, viewed := decodeBoth(t, replies(page(tc.items)))
			checkSame(t, inst, view, viewed, tc.viewed)
		})
	}
	t.Run("every odd job on one page", func(t *testing.T) {
		var all strings.Builder
		for _, tc := range oddJobs {
			if tc.viewed > 0 {
				all.WriteString(tc.items)
			}
		}
		inst, view, viewed := decodeBoth(t, replies(page(all.String())))
		checkSame(t, inst, view, viewed, len(inst))
	})
	t.Run("items over several Items and pages", func(t *testing.T) {
		first := envelope(wsman.ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>ctx</n:EnumerationContext><w:Items>`+xjob(jobID)+`</w:Items><w:Items>`+xjob(`<p:JobId>{2}</p:JobId>`)+`</w:Items></n:EnumerateResponse>`)
		second := envelope(wsman.ActionPullResponse, `<n:PullResponse><n:EnumerationContext>ctx</n:EnumerationContext><n:Items>`+xjob(`<p:JobId>{3}</p:JobId>`)+`</n:Items></n:PullResponse>`)
		third := envelope(wsman.ActionPullResponse, `<n:PullResponse><n:Items>`+xjob(`<p:JobId>{4}</p:JobId><p:Ref><a:Address>x</a:Address><a:ReferenceParameters/></p:Ref>`)+`</n:Items><n:EndOfSequence/></n:PullResponse>`)
		inst, view, viewed := decodeBoth(t, replies(first, second, third))
		checkSame(t, inst, view, viewed, 3)
		if len(inst) != 4 {
			t.Fatalf("%d items, want 4", len(inst))
		}
	})
	t.Run("a malformed job ends Jobs with the same error", func(t *testing.T) {
		body := page(xjob(jobID) + xjob(`<p:JobId>{2}</p:JobId><p:State>x</p:State>`))
		_, err := bitsprov.NewClient(wsman.NewClient("http://srv1:5985/wsman", replies(body)())).Jobs(context.Background(), bitsprov.JobFilter{})
		want := `srv1:5985: Enumerate: bitsprov: decode job: BitsClientJob.State: "x" is not a uint16`
		if err == nil || err.Error() != want {
			t.Fatalf("Jobs: %v, want %s", err, want)
		}
	})
}

// TestJobFromViewSimulatorJobs lists the simulator's jobs in every state
// it can hold still long enough (suspended, transferred, error), with
// none, one and several files, through both paths.
func TestJobFromViewSimulatorJobs(t *testing.T) {
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "a.bin"), []byte("some data"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir() // C:\d is root/C/d
	if err := os.MkdirAll(filepath.Join(root, "C", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := wsmantest.Config{Auth: wsmantest.AuthBasic, Users: map[string]string{e2eUser: e2ePassword}, Machine: e2eMachine}
	h, err := bitssim.NewHost(bitssim.HostConfig{Server: cfg, Provider: bitssim.Config{TimeScale: e2eTimeScale, LocalRoot: root}, FilesDir: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	tr, err := transport.New(transport.Config{Auth: transport.AuthBasic, User: e2eUser, Password: e2ePassword})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
		t.Cleanup(c.CloseIdleConnections)
	}
	c := bitsprov.NewClient(wsman.NewClient(h.URL, tr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	create := func(o bitsprov.CreateJobOptions) string {
		t.Helper()
		id, err := c.CreateJob(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	create(bitsprov.CreateJobOptions{DisplayName: "suspended", RemoteURL: h.FilesURL + "/a.bin", LocalFile: `C:\d\s.bin`, Suspended: true})
	create(bitsprov.CreateJobOptions{DisplayName: "three files", Description: `a <b> & "c"`, RemoteURL: h.FilesURL + "/a.bin", LocalFile: `C:\d\1.bin`, Suspended: true,
		ExtraFiles: []bitsprov.FileSpec{{RemoteURL: h.FilesURL + "/a.bin", LocalFile: `C:\d\2.bin`}, {RemoteURL: h.FilesURL + "/a.bin?x=1&y=2", LocalFile: `C:\d\3.bin`}}})
	done := create(bitsprov.CreateJobOptions{DisplayName: "transferred", RemoteURL: h.FilesURL + "/a.bin", LocalFile: `C:\d\t.bin`})
	failed := create(bitsprov.CreateJobOptions{DisplayName: "error", RemoteURL: h.FilesURL + "/missing.bin", LocalFile: `C:\d\e.bin`})
	prio := bitsprov.PriorityLow
	create(bitsprov.CreateJobOptions{DisplayName: "low", RemoteURL: h.FilesURL + "/a.bin", LocalFile: `C:\d\l.bin`, Suspended: true, Priority: &prio, MinimumRetryDelay: time.Minute, NoProgressTimeout: time.Hour})
	for _, w := range []struct {
		id    string
		state bitsprov.State
	}{{done, bitsprov.StateTransferred}, {failed, bitsprov.StateError}} {
		for start := time.Now(); ; {
			j, err := c.Job(ctx, w.id)
			if err != nil {
				t.Fatal(err)
			}
			if j.State == w.state {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("job %s stays %s, want %s", w.id, j.State, w.state)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The listing as the host sends it, one page and one job per page.
	for _, max := range []int{0, 1} {
		var bodies [][]byte
		rec := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			resp, err := tr.RoundTrip(ctx, req)
			if err == nil {
				bodies = append(bodies, bytes.Clone(resp.Body))
			}
			return resp, err
		})
		opts := wsman.EnumerateOptions{Optimize: true, MaxElements: max}
		n := 0
		for _, err := range wsman.NewClient(h.URL, rec).Enumerate(ctx, bitsprov.ResourceURI, opts) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		inst, view, viewed := decodeBoth(t, replies(bodies...))
		checkSame(t, inst, view, viewed, 5)
		states := map[bitsprov.State]int{}
		files := 0
		for _, d := range inst {
			if d.Job == nil {
				t.Fatalf("item did not decode: %s", d.Err)
			}
			states[d.Job.State]++
			files += len(d.Job.Files)
		}
		if want := map[bitsprov.State]int{bitsprov.StateSuspended: 3, bitsprov.StateTransferred: 1, bitsprov.StateError: 1}; !cmp.Equal(states, want) || files != 7 || n != 5 {
			t.Fatalf("listing of %d jobs in states %v with %d files, want 5 jobs in %v with 7", n, states, files, want)
		}
	}
}

// TestJobFromViewFixtures runs every recorded Enumerate and Pull reply in
// fixtures/soap through both paths.
func TestJobFromViewFixtures(t *testing.T) {
	root := filepath.Join("..", "fixtures", "soap")
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			dir := filepath.Dir(path)
			if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pages, viewedAll := 0, 0
	for _, dir := range dirs {
		name, _ := filepath.Rel(root, dir)
		ex, err := transport.LoadExchanges(root, filepath.ToSlash(name))
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range ex {
			if e.Response == nil || !bytes.Contains(e.Response.Body, []byte("EnumerateResponse</a:Action>")) {
				continue
			}
			pages++
			// The enumeration as recorded: this reply and the Pulls
			// after it.
			bodies := [][]byte{e.Response.Body}
			for _, p := range ex[k+1:] {
				if p.Response == nil || !bytes.Contains(p.Response.Body, []byte("PullResponse</a:Action>")) {
					break
				}
				bodies = append(bodies, p.Response.Body)
			}
			t.Run(fmt.Sprintf("%s/%03d", name, k+1), func(t *testing.T) {
				inst, view, viewed := decodeBoth(t, replies(bodies...))
				checkSame(t, inst, view, viewed, -1)
				viewedAll += viewed
			})
		}
	}
	if pages == 0 || viewedAll == 0 {
		t.Fatalf("%d enumerations and %d viewed items in %s: the fixtures moved?", pages, viewedAll, root)
	}
}

// FuzzJobFromView decodes arbitrary items through both paths.
func FuzzJobFromView(f *testing.F) {
	for _, tc := range oddJobs {
		f.Add(tc.items)
	}
	f.Fuzz(func(t *testing.T, items string) {
		inst, view, viewed := decodeBoth(t, replies(page(items)))
		checkSame(t, inst, view, viewed, -1)
	})
}
