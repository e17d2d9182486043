package wsmantest

import (
	"crypto/rand"
	"fmt"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// Namespace prefixes Windows declares on the Envelope of its replies.
var envPrefixes = map[string]string{
	"s": wsman.NsSOAP, "a": wsman.NsAddressing, "x": wsman.NsTransfer,
	"e": wsman.NsEventing, "n": wsman.NsEnumeration, "w": wsman.NsWSMan,
	"p": wsman.NsWSMV, "rsp": wsman.NsShell,
}

// Prefix sets per reply kind, as in the captures.
var (
	nsTransfer  = []string{"s", "a", "x", "w", "p"}
	nsEnum      = []string{"s", "a", "n", "w"}
	nsFault     = []string{"s", "a", "x", "e", "n", "w", "p"}
	nsPlainWSMV = []string{"s", "a", "w", "p"}
)

type envelope struct {
	doc          *etree.Document
	header, body *etree.Element
}

// newEnvelope starts a reply with Windows' header block: Action,
// MessageID (a new upper-case uuid), To anonymous, RelatesTo.
func newEnvelope(action, relatesTo string, prefixes []string) *envelope {
	doc := etree.NewDocument()
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xml:lang", "en-US")
	for _, p := range prefixes {
		env.CreateAttr("xmlns:"+p, envPrefixes[p])
	}
	h := env.CreateElement("s:Header")
	h.CreateElement("a:Action").SetText(action)
	h.CreateElement("a:MessageID").SetText("uuid:" + newUUID())
	h.CreateElement("a:To").SetText(wsman.AddressAnonymous)
	if relatesTo != "" {
		h.CreateElement("a:RelatesTo").SetText(relatesTo)
	}
	b := env.CreateElement("s:Body")
	return &envelope{doc: doc, header: h, body: b}
}

func (e *envelope) bytes() []byte {
	b, err := e.doc.WriteToBytes()
	if err != nil {
		// Writing to memory cannot fail.
		panic(err)
	}
	return b
}

// instanceElement renders an instance the way WinRM's WMI plugin does:
// xmlns:xsi, xmlns:p, xmlns:cim and xsi:type="p:Class_Type" on the element
// (typed), or just the element for a method's _OUTPUT (not typed).
func instanceElement(in *wsman.Instance, typed bool) *etree.Element {
	el := in.Element()
	if in.Fragment || !typed {
		return el
	}
	pfx := el.Space
	var pAttr string
	for _, a := range el.Attr {
		if a.Space == "xmlns" && a.Key == pfx {
			pAttr = a.Value
		}
	}
	el.RemoveAttr("xmlns:xsi")
	el.RemoveAttr("xmlns:cim")
	el.RemoveAttr("xmlns:" + pfx)
	el.RemoveAttr("xsi:type")
	rest := el.Attr
	el.Attr = nil
	el.CreateAttr("xmlns:xsi", wsman.NsXSI)
	el.CreateAttr("xmlns:"+pfx, pAttr)
	el.CreateAttr("xmlns:cim", wsman.NsCIM)
	tn := in.TypeName
	if tn == "" {
		tn = in.ClassName + "_Type"
	}
	el.CreateAttr("xsi:type", pfx+":"+tn)
	el.Attr = append(el.Attr, rest...)
	return el
}

// eprElement renders an EPR under a new element named tag (a:EndpointReference,
// x:ResourceCreated).
func eprElement(tag string, epr *wsman.EndpointReference) *etree.Element {
	el := etree.NewElement(tag)
	addr := epr.Address
	if addr == "" {
		addr = wsman.AddressAnonymous
	}
	el.CreateElement("a:Address").SetText(addr)
	rp := el.CreateElement("a:ReferenceParameters")
	rp.CreateElement("w:ResourceURI").SetText(epr.ResourceURI)
	if len(epr.Selectors) > 0 {
		ss := rp.CreateElement("w:SelectorSet")
		for _, s := range epr.Selectors {
			se := ss.CreateElement("w:Selector")
			se.CreateAttr("Name", s.Name)
			if s.EPR != nil {
				se.AddChild(eprElement("a:EndpointReference", s.EPR))
			} else {
				se.SetText(s.Value)
			}
		}
	}
	return el
}

// newUUID returns a random (version 4) UUID in upper case, as Windows writes them.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
