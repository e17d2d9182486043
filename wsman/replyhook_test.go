package wsman

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type hookCall struct {
	Op   string
	Body string
}

func TestWithReplyHook(t *testing.T) {
	getBody := `<p:BitsClientJob xmlns:p="` + bitsJobURI + `"><p:JobId>{1}</p:JobId><p:State>4</p:State></p:BitsClientJob>`
	var calls []hookCall
	ctx := WithReplyHook(context.Background(), func(op string, body []byte) { calls = append(calls, hookCall{op, string(body)}) })

	t.Run("Get", func(t *testing.T) {
		calls = nil
		var sent string
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){func(req *reply) (int, string) {
			_, sent = ok(ActionGetResponse, getBody)(req)
			return 200, sent
		}}}
		if _, err := f.client().Get(ctx, bitsJobURI, Options{Selectors: []Selector{{Name: "JobId", Value: "{1}"}}}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]hookCall{{"Get", sent}}, calls); diff != "" {
			t.Fatalf("hook calls (-want +got):\n%s", diff)
		}
		for _, x := range []struct {
			expr string
			want []string
		}{
			{"//s:Header/a:Action", []string{ActionGetResponse}},
			{"//p:State", []string{"4"}},
		} {
			got, err := EvalXPath([]byte(calls[0].Body), x.expr, map[string]string{"p": bitsJobURI})
			if err != nil || !cmp.Equal(got, x.want) {
				t.Errorf("EvalXPath(%q) = %q, %v; want %q", x.expr, got, err, x.want)
			}
		}
	})
	t.Run("fault not passed", func(t *testing.T) {
		calls = nil
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){invalidEnumContext}}
		if _, err := f.client().Get(ctx, bitsJobURI, Options{}); err == nil {
			t.Fatal("no error")
		}
		if len(calls) != 0 {
			t.Errorf("hook saw %v", calls)
		}
	})
	t.Run("Enumerate passes each page, not the Release", func(t *testing.T) {
		calls = nil
		var pages []string
		record := func(r func(*reply) (int, string)) func(*reply) (int, string) {
			return func(req *reply) (int, string) {
				status, body := r(req)
				pages = append(pages, body)
				return status, body
			}
		}
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){
			record(ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-0</n:EnumerationContext><w:Items>`+svc("S1")+`</w:Items></n:EnumerateResponse>`)),
			record(ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX-1</n:EnumerationContext><n:Items>`+svc("S2")+`</n:Items></n:PullResponse>`)),
			ok(ActionReleaseResponse, ""),
		}}
		var seen []int // hook calls seen when each item is yielded
		for _, err := range f.client().Enumerate(ctx, wmiSvc, EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, len(calls))
			if len(seen) == 2 {
				break
			}
		}
		if diff := cmp.Diff([]hookCall{{"Enumerate", pages[0]}, {"Pull", pages[1]}}, calls); diff != "" {
			t.Errorf("hook calls (-want +got):\n%s", diff)
		}
		if !cmp.Equal(seen, []int{1, 2}) {
			t.Errorf("hook calls before each item: %v, want [1 2]", seen)
		}
		if len(f.reqs) != 3 {
			t.Errorf("%d requests, want Enumerate, Pull, Release", len(f.reqs))
		}
	})
	t.Run("Identify", func(t *testing.T) {
		calls = nil
		body := string(readWire(t, "identify-response-unauthenticated.xml"))
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){func(*reply) (int, string) { return 200, body }}}
		if _, err := f.client().Identify(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]hookCall{{"Identify", body}}, calls); diff != "" {
			t.Errorf("hook calls (-want +got):\n%s", diff)
		}
	})
	t.Run("no hook", func(t *testing.T) {
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){ok(ActionDeleteResponse, "")}}
		if err := f.client().Delete(context.Background(), bitsJobURI, Options{}); err != nil {
			t.Fatal(err)
		}
	})
}
