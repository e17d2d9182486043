package bitssim

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// listenerProps lists a listener's properties as Name=Value in wire order.
func listenerProps(t *testing.T, in *wsman.Instance) []string {
	t.Helper()
	var out []string
	for _, p := range in.Props {
		if len(p.Values) != 1 {
			t.Fatalf("%s has %d values", p.Name, len(p.Values))
		}
		out = append(out, p.Name+"="+p.Values[0].Text)
	}
	return out
}

// TestListeners drives winrm/config/Listener through the real client:
// the quickconfig listener, Create, AlreadyExists, Get, Put, Enumerate,
// Delete, and the faults for a missing listener and bad selectors.
func TestListeners(t *testing.T) {
	h, c := newBasicHost(t, HostConfig{})
	c.Retry = wsman.NoRetry
	ctx := context.Background()
	key := func(addr, tp string) wsman.Options {
		return wsman.Options{Selectors: []wsman.Selector{{Name: "Address", Value: addr}, {Name: "Transport", Value: tp}}}
	}
	faultOf := func(t *testing.T, err error) *wsman.Fault {
		t.Helper()
		var f *wsman.Fault
		if !errors.As(err, &f) {
			t.Fatalf("err = %v, want a fault", err)
		}
		return f
	}
	enumerate := func(t *testing.T) [][]string {
		var out [][]string
		for it, err := range c.Enumerate(ctx, ListenerURI, wsman.EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, listenerProps(t, it.Instance))
		}
		return out
	}
	quick := []string{"Address=*", "Transport=HTTP", "Port=5985", "Hostname=", "Enabled=true", "URLPrefix=wsman", "CertificateThumbprint=", "ListeningOn=127.0.0.1"}
	https := []string{"Address=*", "Transport=HTTPS", "Port=5986", "Hostname=server1", "Enabled=true", "URLPrefix=wsman", "CertificateThumbprint=AB12", "ListeningOn=127.0.0.1"}

	if diff := cmp.Diff([][]string{quick}, enumerate(t)); diff != "" {
		t.Fatalf("initial listeners (-want +got):\n%s", diff)
	}
	in := wsman.NewInstance(ListenerURI)
	in.Set("Hostname", "server1")
	in.Set("CertificateThumbprint", "AB12")
	in.Set("ListeningOn", "10.0.0.1") // read-only: ignored
	epr, err := c.Create(ctx, ListenerURI, key("*", "https"), in)
	if err != nil {
		t.Fatal(err)
	}
	wantEPR := &wsman.EndpointReference{Address: h.URL, ResourceURI: ListenerURI,
		Selectors: []wsman.Selector{{Name: "Address", Value: "*"}, {Name: "Transport", Value: "HTTPS"}}}
	if diff := cmp.Diff(wantEPR, epr); diff != "" {
		t.Errorf("Create EPR (-want +got):\n%s", diff)
	}
	got, err := c.Get(ctx, ListenerURI, key("*", "HTTPS"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(https, listenerProps(t, got)); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	_, err = c.Create(ctx, ListenerURI, key("*", "HTTPS"), wsman.NewInstance(ListenerURI))
	if f := faultOf(t, err); f.Subcode != "AlreadyExists" || f.WSManCode != wsmantest.CodeAlreadyExists {
		t.Errorf("second Create: %v", f)
	}
	put := wsman.NewInstance(ListenerURI)
	put.Set("Enabled", "false")
	put.Set("Transport", "HTTP") // read-only key in the body: ignored
	if _, err := c.Put(ctx, ListenerURI, key("*", "HTTPS"), put); err != nil {
		t.Fatal(err)
	}
	disabled := append([]string(nil), https...)
	disabled[4] = "Enabled=false"
	if diff := cmp.Diff([][]string{quick, disabled}, enumerate(t)); diff != "" {
		t.Errorf("after Put (-want +got):\n%s", diff)
	}
	if err := c.Delete(ctx, ListenerURI, key("*", "HTTP")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{disabled}, enumerate(t)); diff != "" {
		t.Errorf("after Delete (-want +got):\n%s", diff)
	}
	err = c.Delete(ctx, ListenerURI, key("*", "HTTP"))
	if f := faultOf(t, err); f.Subcode != "DestinationUnreachable" || f.WSManCode != wsman.CodeResourceNotFound || f.ProviderFault != nil {
		t.Errorf("second Delete: %+v", f)
	}
	for _, tc := range []struct {
		name string
		sels []wsman.Selector
		code uint32
	}{
		{"no Transport", []wsman.Selector{{Name: "Address", Value: "*"}}, wsmantest.CodeInsufficientSelectors},
		{"Transport FTP", []wsman.Selector{{Name: "Address", Value: "*"}, {Name: "Transport", Value: "FTP"}}, wsmantest.CodeUnexpectedSelectors},
	} {
		_, err := c.Create(ctx, ListenerURI, wsman.Options{Selectors: tc.sels}, wsman.NewInstance(ListenerURI))
		if f := faultOf(t, err); f.Subcode != "InvalidSelectors" || f.WSManCode != tc.code {
			t.Errorf("Create with %s: %v", tc.name, f)
		}
	}
}
