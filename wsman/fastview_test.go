package wsman

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/google/go-cmp/cmp"
)

// viewInstance reads an object through its view into an Instance the way
// a caller of EnumerateViews would: a property is every element of one
// exact name. ResourceURI, TypeName and Fragment are not in views.
func viewInstance(o ObjectView) *Instance {
	in := &Instance{ClassName: o.ClassName()}
	for p := o.First(); p.Valid(); p = p.Next() {
		v := Value{Kind: p.Kind(), Text: p.Text()}
		if v.Kind == KindObject {
			v.Object = viewInstance(p.Object())
		} else if p.Object().Valid() {
			panic("Object of a " + v.Kind.String() + " value is valid")
		}
		if k, t := p.Value(); k != v.Kind || t != v.Text {
			panic("Value is not Kind and Text")
		}
		if pr := in.propExact(p.Name()); pr != nil {
			pr.Values = append(pr.Values, v)
			continue
		}
		in.Props = append(in.Props, Property{Name: p.Name(), Values: []Value{v}})
	}
	return in
}

// viewable strips what views do not show from a parsed instance.
func viewable(in *Instance) *Instance {
	out := &Instance{ClassName: in.ClassName}
	for _, p := range in.Props {
		q := Property{Name: p.Name}
		for _, v := range p.Values {
			if v.Object != nil {
				v.Object = viewable(v.Object)
			}
			q.Values = append(q.Values, v)
		}
		out.Props = append(out.Props, q)
	}
	return out
}

// checkViews checks that when a reply the fast reader reads holds an
// Enumerate or Pull page, parseViewPage either leaves it to parsePage
// or views exactly what parsePage reads: the same context and end, and
// objects that read as parsePage's instances. It reports whether the
// reply was viewed.
func checkViews(t testing.TB, b []byte) (viewed bool) {
	t.Helper()
	for _, want := range []string{"EnumerateResponse", "PullResponse"} {
		fr, err := parseFastReply(b)
		if err != nil {
			return false
		}
		rep := &reply{fast: fr}
		ip, ierr := parsePage(rep, want)
		vp, verr := parseViewPage(rep, want)
		if (ierr == nil) != (verr == nil) || ierr != nil && ierr.Error() != verr.Error() {
			t.Fatalf("%s: parsePage: %v; parseViewPage: %v", want, ierr, verr)
		}
		if ierr != nil {
			rep.release()
			continue
		}
		if vp.doc == nil {
			if !reflect.DeepEqual(ip, vp) {
				t.Fatalf("%s: a page not viewed differs from parsePage's:\n%s", want, cmp.Diff(ip, vp, cmp.AllowUnexported(page{})))
			}
			rep.release()
			continue
		}
		viewed = true
		if rep.fast != nil || ip.context != vp.context || ip.done != vp.done || len(ip.items) != len(vp.views) || vp.items != nil {
			t.Fatalf("%s: viewed page (context %q, done %v, %d views, %d items) is not parsePage's (%q, %v, %d items)",
				want, vp.context, vp.done, len(vp.views), len(vp.items), ip.context, ip.done, len(ip.items))
		}
		for k, it := range ip.items {
			if it.EPR != nil || it.Instance == nil {
				t.Fatalf("%s: item %d viewed though it has an EPR or no object", want, k)
			}
			got, want := viewInstance(ObjectView{d: vp.doc, n: vp.views[k]}), viewable(it.Instance)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("item %d reads differently through its view (-instance +view):\n%s", k, cmp.Diff(want, got))
			}
		}
		vp.free()
	}
	return viewed
}

// TestEnumerateViews checks EnumerateViews against Enumerate over a
// client: the same requests, the views for viewable pages, Item for the
// others, and early stops that Release as Enumerate does.
func TestEnumerateViews(t *testing.T) {
	items := func(n int) string {
		s := ""
		for range n {
			s += instance40()
		}
		return s
	}
	pages := []func(id string) string{
		func(id string) string {
			return windowsReply(ActionEnumerateResp, id, `<n:EnumerateResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><w:Items>`+items(2)+`</w:Items></n:EnumerateResponse>`)
		},
		// An item with an EPR: this page comes as Items.
		func(id string) string {
			return windowsReply(ActionPullResponse, id, `<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items>`+items(1)+
				`<a:EndpointReference><a:Address>x</a:Address></a:EndpointReference></n:Items></n:PullResponse>`)
		},
		func(id string) string {
			return windowsReply(ActionPullResponse, id, `<n:PullResponse><n:Items>`+items(3)+`</n:Items><n:EndOfSequence/></n:PullResponse>`)
		},
	}
	serve := func(actions *[]string) transport.Transport {
		next := 0
		return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			r, err := parseEnvelope(req.Body)
			if err != nil {
				return nil, err
			}
			action := r.headerText(NsAddressing, "Action")
			*actions = append(*actions, action)
			id := r.headerText(NsAddressing, "MessageID")
			body := windowsReply(ActionReleaseResponse, id, ``)
			if action != ActionRelease {
				body = pages[next](id)
				next++
			}
			return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml;charset=UTF-8", Body: []byte(body)}, nil
		})
	}
	for _, stopAt := range []int{-1, 1, 2, 4} {
		var wantActions, gotActions []string
		var want []*Instance
		n := 0
		for it, err := range NewClient("http://h:5985/wsman", serve(&wantActions)).Enumerate(context.Background(), "http://r/C", EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			if n == stopAt {
				break
			}
			n++
			want = append(want, it.Instance)
		}
		var got []*Instance
		viewed := 0
		n = 0
		for v, err := range NewClient("http://h:5985/wsman", serve(&gotActions)).EnumerateViews(context.Background(), "http://r/C", EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			if n == stopAt {
				break
			}
			n++
			switch {
			case v.Object.Valid() == (v.Item != nil):
				t.Fatalf("item %d: Object valid %v with Item %v", n, v.Object.Valid(), v.Item)
			case v.Item != nil:
				got = append(got, v.Item.Instance)
			default:
				viewed++
				got = append(got, viewInstance(v.Object))
			}
		}
		// Compared as views read them.
		for _, l := range [][]*Instance{want, got} {
			for k, in := range l {
				if in != nil {
					l[k] = viewable(in)
				}
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stop at %d: items differ (-Enumerate +EnumerateViews):\n%s", stopAt, diff)
		}
		if diff := cmp.Diff(wantActions, gotActions); diff != "" {
			t.Errorf("stop at %d: requests differ (-Enumerate +EnumerateViews):\n%s", stopAt, diff)
		}
		if wantViewed := map[int]int{-1: 5, 1: 1, 2: 2, 4: 2}[stopAt]; viewed != wantViewed {
			t.Errorf("stop at %d: %d items viewed, want %d", stopAt, viewed, wantViewed)
		}
	}
}

// TestViewsOfWireCaptures: every real enumeration page with items (none
// holds an EPR) is viewed, and reads as its instances (checkViews).
func TestViewsOfWireCaptures(t *testing.T) {
	dir := wireDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	viewed := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("Items>")) || !bytes.Contains(b, []byte("Response</a:Action>")) {
			continue
		}
		name := filepath.Base(f)
		if !strings.Contains(name, "enum") && !strings.Contains(name, "pull") {
			continue
		}
		if !checkViews(t, b) {
			t.Errorf("%s: not viewed", name)
		}
		viewed++
	}
	if viewed < 10 {
		t.Errorf("only %d captures viewed", viewed)
	}
}

// TestGetView checks GetView against Get over the same replies: the same
// request, a view that reads as Get's instance when the reply is viewable,
// Get's Instance as Item when it is not (an EPR in the instance, a reply
// left to etree), Get's errors exactly (decode then not called), and
// decode's own error returned as it is.
func TestGetView(t *testing.T) {
	const uri = "http://r/C"
	epr := `<p:BitsClientJob xmlns:p="` + bitsJobURI + `"><p:JobId>J</p:JobId><p:Ref><a:Address>http://h/wsman</a:Address>` +
		`<a:ReferenceParameters><w:ResourceURI>` + bitsJobURI + `</w:ResourceURI><w:SelectorSet><w:Selector Name="JobId">K</w:Selector></w:SelectorSet></a:ReferenceParameters></p:Ref></p:BitsClientJob>`
	errDecode := errors.New("decode refused")
	for _, tc := range []struct {
		name   string
		body   string // the GetResponse's body
		status int
		viewed bool
		// decodeErr is what decode returns.
		decodeErr error
	}{
		{name: "instance", body: instance40(), viewed: true},
		{name: "embedded object", body: `<p:BitsClientJob xmlns:p="` + bitsJobURI + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:Files><p:BitsFile xsi:type="p:BitsFile_Type"><p:RemoteName>http://x/a</p:RemoteName></p:BitsFile></p:Files><p:Files xsi:nil="true"/></p:BitsClientJob>`, viewed: true},
		{name: "EPR property", body: epr},
		{name: "left to etree", body: `<p:BitsClientJob xmlns:p="` + bitsJobURI + `"><p:Näme>x</p:Näme></p:BitsClientJob>`},
		{name: "empty body", body: ``},
		{name: "fault", status: 500, body: `<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The selectors are not valid.</s:Text></s:Reason></s:Fault>`},
		{name: "decode error", body: instance40(), viewed: true, decodeErr: errDecode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := func(reqs *[]string) transport.Transport {
				return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
					r, err := parseEnvelope(req.Body)
					if err != nil {
						return nil, err
					}
					id := r.headerText(NsAddressing, "MessageID")
					*reqs = append(*reqs, strings.Replace(string(req.Body), id, "ID", 1))
					status, action := 200, ActionGetResponse
					if tc.status != 0 {
						status, action = tc.status, ActionFaultWSMan
					}
					return &transport.Response{StatusCode: status, ContentType: "application/soap+xml;charset=UTF-8", Body: []byte(windowsReply(action, id, tc.body))}, nil
				})
			}
			opts := Options{Selectors: []Selector{{Name: "JobId", Value: "J"}}}
			var wantReqs, gotReqs []string
			want, werr := NewClient("http://h:5985/wsman", serve(&wantReqs)).Get(context.Background(), uri, opts)
			calls := 0
			var got *Instance
			var view ItemView
			gerr := NewClient("http://h:5985/wsman", serve(&gotReqs)).GetView(context.Background(), uri, opts, func(v ItemView) error {
				calls++
				view = v
				if v.Item != nil {
					got = v.Item.Instance
				} else {
					got = viewInstance(v.Object)
				}
				return tc.decodeErr
			})
			if diff := cmp.Diff(wantReqs, gotReqs); diff != "" {
				t.Errorf("requests differ (-Get +GetView):\n%s", diff)
			}
			if werr != nil {
				if gerr == nil || gerr.Error() != werr.Error() || calls != 0 {
					t.Fatalf("GetView: %v after %d decodes; Get: %v", gerr, calls, werr)
				}
				if f := (*Fault)(nil); tc.status != 0 && !errors.As(gerr, &f) {
					t.Errorf("GetView's error %v is not a *Fault", gerr)
				}
				return
			}
			if tc.decodeErr != nil {
				if gerr != tc.decodeErr {
					t.Fatalf("GetView returned %v, want decode's error as it is", gerr)
				}
			} else if gerr != nil {
				t.Fatal(gerr)
			}
			if calls != 1 || view.Object.Valid() == (view.Item != nil) || view.Object.Valid() != tc.viewed {
				t.Fatalf("%d decodes; last with Object valid %v and Item %v; want 1 with a view %v", calls, view.Object.Valid(), view.Item, tc.viewed)
			}
			if tc.viewed {
				want = viewable(want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("instance differs (-Get +GetView):\n%s", diff)
			}
		})
	}
}
