package wsman

import "strings"

// These read a reply whichever reader parsed it (see reply).

// bodyTag returns the local name of the body's first element, if any.
func (r *reply) bodyTag() (string, bool) {
	if r.fast != nil {
		n := r.fast.bodyChild()
		if n < 0 {
			return "", false
		}
		return r.fast.d.local(n), true
	}
	el := r.bodyChild()
	if el == nil {
		return "", false
	}
	return el.Tag, true
}

// bodyInstance parses the body's first element, which must exist, as an
// instance.
func (r *reply) bodyInstance() (*Instance, error) {
	if r.fast != nil {
		return r.fast.d.parseInstance(r.fast.bodyChild())
	}
	return ParseInstance(r.bodyChild())
}

// resourceCreated reads x:ResourceCreated; ok is false when it is absent.
func (r *reply) resourceCreated() (epr *EndpointReference, ok bool, err error) {
	if r.fast != nil {
		rc := r.fast.d.child(r.fast.body, NsTransfer, "ResourceCreated")
		if rc < 0 {
			return nil, false, nil
		}
		epr, err = r.fast.d.parseEPR(rc)
		return epr, true, err
	}
	rc := child(r.body, NsTransfer, "ResourceCreated")
	if rc == nil {
		return nil, false, nil
	}
	epr, err = parseEPR(rc)
	return epr, true, err
}

// identify reads wsmid:IdentifyResponse; ok is false when it is absent.
func (r *reply) identify() (out *IdentifyResponse, ok bool) {
	if r.fast != nil {
		return r.fast.identify()
	}
	ir := child(r.body, NsIdentity, "IdentifyResponse")
	if ir == nil {
		return nil, false
	}
	out = &IdentifyResponse{}
	for _, e := range elementKids(ir) {
		if e.NamespaceURI() != NsIdentity {
			continue
		}
		switch e.Tag {
		case "ProtocolVersion":
			out.ProtocolVersion = strings.TrimSpace(textOf(e))
		case "ProductVendor":
			out.ProductVendor = strings.TrimSpace(textOf(e))
		case "ProductVersion":
			out.ProductVersion = strings.TrimSpace(textOf(e))
		case "SecurityProfiles":
			for _, p := range elementKids(e) {
				out.SecurityProfiles = append(out.SecurityProfiles, strings.TrimSpace(textOf(p)))
			}
		}
	}
	return out, true
}
