package wsman

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FuzzParseReply feeds arbitrary bytes through every reply parser: none may
// panic or hang, whatever a peer sends.
func FuzzParseReply(f *testing.F) {
	_, file, _, _ := runtime.Caller(0)
	if files, err := filepath.Glob(filepath.Join(filepath.Dir(file), "..", "..", "shared", "wire", "*.xml")); err == nil {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(windowsReply(ActionGetResponse, "x", instance40())))
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>zz:</s:Value></s:Subcode></s:Code></s:Fault></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseEnvelope(b)
		if err != nil {
			return
		}
		if fe := rep.fault(); fe != nil {
			_ = parseFault(fe).Error()
			return
		}
		_, _ = parsePage(rep, "EnumerateResponse")
		_, _ = parsePage(rep, "PullResponse")
		if el := rep.bodyChild(); el != nil {
			if in, err := ParseInstance(el); err == nil {
				_ = in.Element()
				for _, p := range in.Props {
					_, _ = in.String(p.Name)
					_, _ = in.Datetime(p.Name)
					_, _ = in.Interval(p.Name)
					_, _ = in.Uint64(p.Name)
				}
			}
			_, _ = parseEPR(el)
		}
	})
}
