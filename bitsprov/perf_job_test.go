package bitsprov

import (
	"bytes"
	"context"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// BenchmarkJobFromInstance decodes one job (one file, as the simulator
// and a fleet's update jobs have) from an instance read once.
func BenchmarkJobFromInstance(b *testing.B) {
	body := []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">` +
		`<s:Header><a:Action>` + wsman.ActionGetResponse + `</a:Action><a:RelatesTo>`)
	tail := []byte(`</a:RelatesTo></s:Header><s:Body>` + jobXML("2", "2") + `</s:Body></s:Envelope>`)
	open, end := []byte("<a:MessageID>"), []byte("</a:MessageID>")
	tr := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		i := bytes.Index(req.Body, open)
		j := bytes.Index(req.Body[i:], end)
		reply := append(append(append([]byte(nil), body...), req.Body[i+len(open):i+j]...), tail...)
		return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml", Body: reply}, nil
	})
	in, err := wsman.NewClient("http://srv1:5985/wsman", tr).Get(context.Background(), ResourceURI, wsman.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		j, err := JobFromInstance(in)
		if err != nil || len(j.Files) != 1 {
			b.Fatal(err)
		}
	}
}
