package wsman

import (
	"context"
	"iter"
	"strings"
)

// Views of enumerated objects: EnumerateViews hands a caller that turns
// every item into a type of its own (bitsprov's jobs) a read-only view of
// the fast reader's parsed element instead of an *Instance. Listing a
// thousand jobs built a thousand Instances with some forty Properties and
// Values each, only for the caller to read them once and drop them: half
// the memory a listing allocated, and a sixth of its CPU. A view costs
// nothing to make; what it reads (names, text) refers to the reply body
// exactly as an Instance's strings do.
//
// A view reads values through the same code as ParseInstance on the fast
// reader (valueShape, textOf), so that whatever a caller decodes from a
// view equals what it would decode from the Instance. Pages a view might
// read differently are not viewed at all: see viewable.

// ItemView is one item of EnumerateViews: either Object, a view of the
// item's object, or Item, the item as Enumerate yields it, for pages the
// views do not cover (a reply the fast reader left to etree, items with
// endpoint references or in w:Item wrappers). Exactly one is set.
type ItemView struct {
	Item   *Item
	Object ObjectView
}

// ObjectView is a read-only view of an object (an instance or an embedded
// object) in a reply. It is valid only until the yield that produced it
// returns: the parsed document is reused for the next reply. Strings read
// from it stay valid.
type ObjectView struct {
	d *fdoc
	n int32
	// self: n is a property element holding the object's properties
	// (shapeSelf), not the object's own element.
	self bool
}

// Valid reports whether o views an object (the zero ObjectView does not).
func (o ObjectView) Valid() bool { return o.d != nil }

// ClassName is the object's Instance.ClassName.
func (o ObjectView) ClassName() string {
	if o.d == nil {
		return ""
	}
	if o.self {
		class, _ := o.d.selfClass(o.n)
		return class
	}
	return o.d.local(o.n)
}

// First is the object's first property element. An array property is
// one element per value, so a property is every element of one exact
// name, in order (as Instance.Props groups them); cim:Location elements
// are skipped as ParseInstance skips them. The PropView is invalid when
// there are none.
func (o ObjectView) First() PropView {
	if o.d == nil {
		return PropView{}
	}
	return o.d.propAt(o.d.nodes[o.n].first)
}

// PropView is a read-only view of one property element: one value of the
// property Name. Valid only as long as the ObjectView it came from.
type PropView struct {
	d *fdoc
	n int32
}

// propAt is the property element c or the first after it, skipping
// cim:Location.
func (d *fdoc) propAt(c int32) PropView {
	for ; c >= 0; c = d.nodes[c].next {
		if d.local(c) != "Location" || d.ns(c) != NsCIM {
			return PropView{d: d, n: c}
		}
	}
	return PropView{}
}

// Valid reports whether p views an element; First and Next return an
// invalid PropView past the last one.
func (p PropView) Valid() bool { return p.d != nil }

// Next is the next property element of the same object.
func (p PropView) Next() PropView {
	if p.d == nil {
		return PropView{}
	}
	return p.d.propAt(p.d.nodes[p.n].next)
}

// Name is the property's name: the element's local name, as in
// Property.Name.
func (p PropView) Name() string {
	if p.d == nil {
		return ""
	}
	return p.d.local(p.n)
}

// Kind is the Kind of the Value that ParseInstance reads from this
// element.
func (p PropView) Kind() ValueKind {
	if p.d == nil {
		return KindNil
	}
	switch p.d.valueShape(p.n) {
	case shapeNil:
		return KindNil
	case shapeText:
		return KindText
	case shapeDatetime:
		return KindDatetime
	case shapeInterval:
		return KindInterval
	case shapeRef:
		return KindReference
	}
	return KindObject
}

// Text is the Value's Text: the text of a KindText value, the lexical
// form of a datetime or interval, "" for other kinds.
func (p PropView) Text() string {
	if p.d == nil {
		return ""
	}
	switch p.d.valueShape(p.n) {
	case shapeText:
		return p.d.textOf(p.n)
	case shapeDatetime, shapeInterval:
		return strings.TrimSpace(p.d.textOf(p.d.nodes[p.n].first))
	}
	return ""
}

// Value is Kind and Text at once, for a decoder that needs both: it
// reads the element's shape once.
func (p PropView) Value() (ValueKind, string) {
	if p.d == nil {
		return KindNil, ""
	}
	switch p.d.valueShape(p.n) {
	case shapeNil:
		return KindNil, ""
	case shapeText:
		return KindText, p.d.textOf(p.n)
	case shapeDatetime:
		return KindDatetime, strings.TrimSpace(p.d.textOf(p.d.nodes[p.n].first))
	case shapeInterval:
		return KindInterval, strings.TrimSpace(p.d.textOf(p.d.nodes[p.n].first))
	case shapeRef:
		return KindReference, ""
	}
	return KindObject, ""
}

// Object views the embedded object of a KindObject value; it is invalid
// for other kinds.
func (p PropView) Object() ObjectView {
	if p.d == nil {
		return ObjectView{}
	}
	switch p.d.valueShape(p.n) {
	case shapeChild:
		return ObjectView{d: p.d, n: p.d.nodes[p.n].first}
	case shapeSelf:
		return ObjectView{d: p.d, n: p.n, self: true}
	}
	return ObjectView{}
}

// EnumerateViews is Enumerate for callers that decode each item into a
// type of their own and keep nothing of the Instance: it yields views of
// the items' objects, valid until the yield returns, instead of building
// an Instance for each (see ItemView). Requests, retries, Release and
// errors are exactly Enumerate's; so are the items, as long as a caller
// reads a view the way it would read the Instance.
func (c *Client) EnumerateViews(ctx context.Context, resourceURI string, opts EnumerateOptions) iter.Seq2[ItemView, error] {
	return func(yield func(ItemView, error) bool) {
		e := &enumeration{c: c, ctx: ctx, opts: &opts, views: true}
		e.run(resourceURI, yield)
	}
}

// viewable reports whether the items under the Items elements its can be
// yielded as views with exactly the outcome of parseItems: every item is
// an object (not w:Item, which may pair it with an EPR), and nothing in
// them is in the addressing namespace, so no EPR is read, and ParseInstance
// (whose only failure is a malformed EPR) cannot fail on any of them.
func (d *fdoc) viewable(its []int32) bool {
	// Namespace indexes that are the addressing namespace (the table is
	// short: a page's items share their declarations).
	var addr uint64
	for k, uri := range d.nsTab {
		if uri == NsAddressing {
			if k >= 64 {
				return false
			}
			addr |= 1 << k
		}
	}
	for _, n := range its {
		for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
			if d.is(c, NsWSMan, "Item") {
				return false
			}
		}
		if addr == 0 {
			continue
		}
		// The subtree of n is the nodes after it up to the next node
		// that is not its descendant (nodes are in document order).
		end := int32(len(d.nodes))
		for a := n; a > 0; a = d.nodes[a].parent {
			if nx := d.nodes[a].next; nx >= 0 {
				end = nx
				break
			}
		}
		for k := n + 1; k < end; k++ {
			if ns := d.nodes[k].ns; ns < 64 && addr&(1<<ns) != 0 {
				return false
			}
		}
	}
	return true
}

// parseViewPage is parsePage for EnumerateViews: when the reply was fast
// read and its items are viewable, the page keeps the document (taken
// from rep, whose release then does nothing) and lists the items'
// elements; otherwise it is parsePage's page.
func parseViewPage(rep *reply, want string) (*page, error) {
	if rep.fast == nil {
		return parsePage(rep, want)
	}
	d := rep.fast.d
	resp := d.child(rep.fast.body, NsEnumeration, want)
	if resp < 0 {
		return parsePage(rep, want)
	}
	var buf [2]int32
	p, its := d.scanPage(resp, buf[:0])
	if !d.viewable(its) {
		return parsePage(rep, want)
	}
	k := 0
	for _, n := range its {
		k += d.nkids(n)
	}
	p.views = make([]int32, 0, k)
	for _, n := range its {
		for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
			p.views = append(p.views, c)
		}
	}
	p.doc, rep.fast = d, nil
	return p, nil
}
