package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/wsman"
)

// WSManOptions are the flags of the generic wsman subcommands.
type WSManOptions struct {
	f *Factory
	// Op is identify, get, put, invoke, enumerate, create or delete.
	Op          string
	ResourceURI string
	Method      string
	Selectors   []string
	Values      []string
	XPath       string
	Filter      string
	MaxElements int
}

// NewCmdWSMan builds "wsman" and its subcommands.
func NewCmdWSMan(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wsman",
		Short: "Generic WS-Management operations (Get-WSManInstance and friends)",
		Long: `Generic WS-Management operations against any resource URI, as PowerShell's
Get-WSManInstance, Set-WSManInstance, Invoke-WSManAction, New-WSManInstance
and Remove-WSManInstance do, and as winrm.cmd get/set/invoke/enumerate do.

A resource URI may be given in full or with an alias:
  wmi/...       http://schemas.microsoft.com/wbem/wsman/1/wmi/...
  wmicimv2/...  http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/...
  cimv2/...     http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/...
  winrm/...     http://schemas.microsoft.com/wbem/wsman/1/...

-o json prints each instance as an object of its properties in wire order:
xsi:nil becomes null, arrays become lists, embedded objects become objects.
Values stay strings (WS-Management carries no types). With several hosts a
"host" field comes first.`,
		Example: `  bitsremote wsman identify -H server1
  bitsremote wsman enumerate wmi/root/microsoft/bits/BitsClientJob -H server1 -u admin -o json`,
		Args: noArgs,
	}
	for _, op := range []string{"identify", "get", "put", "invoke", "enumerate", "create", "delete"} {
		cmd.AddCommand(newCmdWSManOp(f, op))
	}
	return cmd
}

func newCmdWSManOp(f *Factory, op string) *cobra.Command {
	opts := &WSManOptions{f: f, Op: op}
	c := &cobra.Command{}
	switch op {
	case "identify":
		c.Use = "identify"
		c.Short = "Identify the WS-Management service (unauthenticated)"
		c.Example = "  bitsremote wsman identify -H server1"
		c.Args = noArgs
	case "get":
		c.Use = "get RESOURCE_URI"
		c.Short = "Get one instance (Get-WSManInstance)"
		c.Example = `  bitsremote wsman get wmicimv2/Win32_Service -s Name=WinRM -H server1 -u admin
  bitsremote wsman get wmi/root/microsoft/bits/BitsClientJob -s JobId={GUID} -H server1 -u admin --xpath '//p:State'`
		c.Args = exactArgs("RESOURCE_URI")
	case "put":
		c.Use = "put RESOURCE_URI"
		c.Short = "Change properties of an instance (Set-WSManInstance): get, patch, put"
		c.Example = `  bitsremote wsman put wmi/root/microsoft/bits/BitsClientJob -s JobId={GUID} -v Priority=0 -H server1 -u admin`
		c.Args = exactArgs("RESOURCE_URI")
	case "invoke":
		c.Use = "invoke RESOURCE_URI METHOD"
		c.Short = "Invoke a method (Invoke-WSManAction)"
		c.Example = `  bitsremote wsman invoke wmi/root/microsoft/bits/BitsClientJob SetJobState -s JobId={GUID} -v JobState=2 -H server1 -u admin
  bitsremote wsman invoke wmicimv2/Win32_Process Create -v CommandLine=notepad.exe -H server1 -u admin`
		c.Args = exactArgs("RESOURCE_URI", "METHOD")
	case "enumerate":
		c.Use = "enumerate RESOURCE_URI"
		c.Short = "Enumerate instances, pulling to the end (Get-WSManInstance -Enumerate)"
		c.Example = `  bitsremote wsman enumerate wmi/root/microsoft/bits/BitsClientJob -H server1 -u admin -o json
  bitsremote wsman enumerate 'wmicimv2/*' --filter "SELECT Name,State FROM Win32_Service WHERE StartMode='Auto'" -H server1 -u admin`
		c.Args = exactArgs("RESOURCE_URI")
	case "create":
		c.Use = "create RESOURCE_URI"
		c.Short = "Create an instance (New-WSManInstance)"
		c.Example = `  bitsremote wsman create winrm/config/Listener -s Address=* -s Transport=HTTPS -v Hostname=server1 -v CertificateThumbprint=AB12... -H server1 -u admin`
		c.Args = exactArgs("RESOURCE_URI")
	case "delete":
		c.Use = "delete RESOURCE_URI"
		c.Short = "Delete an instance (Remove-WSManInstance)"
		c.Example = `  bitsremote wsman delete winrm/config/Listener -s Address=* -s Transport=HTTP -H server1 -u admin`
		c.Args = exactArgs("RESOURCE_URI")
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			opts.ResourceURI = args[0]
		}
		if len(args) > 1 {
			opts.Method = args[1]
		}
		return wsmanRun(cmd.Context(), opts)
	}
	fl := c.Flags()
	if op != "identify" && op != "enumerate" {
		fl.StringArrayVarP(&opts.Selectors, "selector", "s", nil, "selector `Name=Value` addressing the instance (repeatable)")
	}
	if op == "put" || op == "invoke" || op == "create" {
		fl.StringArrayVarP(&opts.Values, "value", "v", nil, "property or parameter `Name=Value` (repeatable; repeat a name for an array)")
	}
	if op != "delete" {
		fl.StringVar(&opts.XPath, "xpath", "", "print what this XPath 1.0 `EXPR` selects in each reply, headers included (p: is the class namespace; s:, a:, w:, n: as usual)")
	}
	if op == "enumerate" {
		fl.StringVar(&opts.Filter, "filter", "", "WQL `QUERY` (use a .../* resource URI)")
		fl.IntVar(&opts.MaxElements, "max-elements", 0, "items per Pull (0: the host's default)")
	}
	return c
}

func wsmanRun(ctx context.Context, opts *WSManOptions) error {
	f := opts.f
	uri := ""
	if opts.Op != "identify" {
		var err error
		if uri, err = resolveURI(opts.ResourceURI); err != nil {
			return err
		}
	}
	selPairs, err := parsePairs("-s", opts.Selectors)
	if err != nil {
		return err
	}
	valPairs, err := parsePairs("-v", opts.Values)
	if err != nil {
		return err
	}
	if opts.MaxElements < 0 {
		return usageErrorf("--max-elements must not be negative")
	}
	if opts.Op == "invoke" && strings.ContainsAny(opts.Method, "/ <>") {
		return usageErrorf("method %q is not a method name", opts.Method)
	}
	if opts.XPath != "" {
		if err := checkXPath(opts.XPath); err != nil {
			return err
		}
	}
	wopts := wsman.Options{Selectors: selectorsFrom(selPairs)}
	out := newOutput(f.IO, f.Conn.Output, opts.Op == "enumerate")

	if opts.Op == "identify" {
		return f.identify(ctx, out, opts)
	}
	err = f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		// --xpath reads the whole reply (headers included), as wsman
		// received it: the latest one not yet shown.
		var reply []byte
		if opts.XPath != "" {
			ctx = wsman.WithReplyHook(ctx, func(_ string, body []byte) { reply = body })
		}
		emit := func(in *wsman.Instance) error {
			if opts.XPath == "" {
				return opts.emitInstance(out, s.Endpoint.Name, in)
			}
			if reply == nil {
				return nil // an enumeration's later item from a reply already shown
			}
			classNS := uri
			if in != nil {
				classNS = in.ResourceURI
			}
			b := reply
			reply = nil
			return opts.emitXPath(out, s.Endpoint.Name, b, classNS)
		}
		switch opts.Op {
		case "get":
			in, err := s.WSMan.Get(ctx, uri, wopts)
			if err != nil {
				return err
			}
			return emit(in)
		case "put":
			in, err := s.WSMan.Get(ctx, uri, wopts)
			if err != nil {
				return err
			}
			if err := checkPutNames(in, valPairs); err != nil {
				return err
			}
			applyValues(in, valPairs)
			res, err := s.WSMan.Put(ctx, uri, wopts, in)
			if err != nil {
				return err
			}
			if res == nil {
				res = in
			}
			return emit(res)
		case "invoke":
			// Invoke names the _INPUT element itself; only the
			// properties matter here.
			input := &wsman.Instance{ClassName: opts.Method + "_INPUT", ResourceURI: uri}
			applyValues(input, valPairs)
			res, err := s.WSMan.Invoke(ctx, uri, opts.Method, wopts, input)
			if err != nil {
				return err
			}
			return emit(res)
		case "create":
			in := wsman.NewInstance(uri)
			applyValues(in, valPairs)
			epr, err := s.WSMan.Create(ctx, uri, wopts, in)
			if err != nil {
				return err
			}
			if opts.XPath != "" {
				return emit(nil)
			}
			r := eprJSON(epr)
			r.Host = s.Endpoint.Name
			return out.emit(s.Endpoint.Name, r)
		case "delete":
			if err := s.WSMan.Delete(ctx, uri, wopts); err != nil {
				return err
			}
			return out.emit(s.Endpoint.Name, deletedRecord{Host: s.Endpoint.Name, ResourceURI: uri, Deleted: true})
		case "enumerate":
			eo := wsman.EnumerateOptions{WQL: opts.Filter, MaxElements: opts.MaxElements, Optimize: true}
			for item, err := range s.WSMan.Enumerate(ctx, uri, eo) {
				if err != nil {
					return err
				}
				if item.Instance != nil {
					if err := emit(item.Instance); err != nil {
						return err
					}
				} else if item.EPR != nil {
					if err := out.emit(s.Endpoint.Name, eprJSON(item.EPR)); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return fmt.Errorf("unknown operation %q", opts.Op)
	})
	if ferr := out.flush(renderWSMan(out)); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// deletedRecord is what "wsman delete" prints.
type deletedRecord struct {
	Host        string `json:"host"`
	ResourceURI string `json:"resourceUri"`
	Deleted     bool   `json:"deleted"`
}

// xpathRecord is what --xpath prints for one answer.
type xpathRecord struct {
	Host   string   `json:"host,omitempty"`
	Values []string `json:"values"`
}

// instanceRecord carries an instance to the table renderer.
type instanceRecord struct {
	host string
	in   *wsman.Instance
}

func (r instanceRecord) MarshalJSON() ([]byte, error) { return instanceJSON(r.host, r.in), nil }

func (o *WSManOptions) emitInstance(out *output, host string, in *wsman.Instance) error {
	h := ""
	if out.multiHost {
		h = host
	}
	return out.emit(host, instanceRecord{host: h, in: in})
}

// emitXPath prints what --xpath selects in one raw reply. The prefix p is
// bound to classNS, the namespace of the answer's class; the usual
// WS-Management prefixes too.
func (o *WSManOptions) emitXPath(out *output, host string, reply []byte, classNS string) error {
	h := ""
	if out.multiHost {
		h = host
	}
	vals, err := wsman.EvalXPath(reply, o.XPath, xpathNamespaces(classNS))
	if err != nil {
		return &UsageError{Err: fmt.Errorf("--xpath %q: %w", o.XPath, err)}
	}
	return out.emit(host, xpathRecord{Host: h, Values: vals})
}

// renderWSMan prints wsman results for people.
func renderWSMan(out *output) func(io.Writer, []record) {
	return func(w io.Writer, recs []record) {
		for i, r := range recs {
			prefix := ""
			if out.multiHost {
				prefix = r.host + ": "
			}
			switch v := r.value.(type) {
			case instanceRecord:
				if i > 0 {
					fmt.Fprintln(w)
				}
				if out.multiHost {
					fmt.Fprintf(w, "# %s\n", r.host)
				}
				writeInstanceText(w, v.in, "")
			case xpathRecord:
				for _, s := range v.Values {
					fmt.Fprintf(w, "%s%s\n", prefix, s)
				}
			case eprRecord:
				fmt.Fprintf(w, "%s%s\n", prefix, eprText(v.epr))
			case deletedRecord:
				fmt.Fprintf(w, "%sdeleted %s\n", prefix, v.ResourceURI)
			case identifyRecord:
				fmt.Fprintf(w, "%sProtocolVersion = %s\n%sProductVendor = %s\n%sProductVersion = %s\n", prefix, v.ProtocolVersion, prefix, v.ProductVendor, prefix, v.ProductVersion)
				if len(v.SecurityProfiles) > 0 {
					fmt.Fprintf(w, "%sSecurityProfiles = %s\n", prefix, strings.Join(v.SecurityProfiles, ", "))
				}
			}
		}
	}
}

// identifyRecord is what "wsman identify" prints.
type identifyRecord struct {
	Host             string   `json:"host"`
	ProtocolVersion  string   `json:"protocolVersion"`
	ProductVendor    string   `json:"productVendor"`
	ProductVersion   string   `json:"productVersion"`
	SecurityProfiles []string `json:"securityProfiles"`
}

// identify runs an unauthenticated Identify on every host: it needs no
// user or password, which makes it the first thing to try on a new host.
func (f *Factory) identify(ctx context.Context, out *output, opts *WSManOptions) error {
	eps, err := f.endpoints()
	if err != nil {
		return err
	}
	cfg, err := f.identifyConfig()
	if err != nil {
		return err
	}
	err = f.fanOut(ctx, out, eps, cfg, func(ctx context.Context, s *session) error {
		var reply []byte
		if opts.XPath != "" {
			ctx = wsman.WithReplyHook(ctx, func(_ string, body []byte) { reply = body })
		}
		id, err := s.WSMan.Identify(ctx)
		if err != nil {
			return err
		}
		if opts.XPath != "" {
			// p: is the wsmid namespace here.
			return opts.emitXPath(out, s.Endpoint.Name, reply, wsman.NsIdentity)
		}
		profiles := append([]string{}, id.SecurityProfiles...)
		return out.emit(s.Endpoint.Name, identifyRecord{Host: s.Endpoint.Name, ProtocolVersion: id.ProtocolVersion,
			ProductVendor: id.ProductVendor, ProductVersion: id.ProductVersion, SecurityProfiles: profiles})
	})
	if ferr := out.flush(renderWSMan(out)); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// resolveURI expands an alias and rejects what cannot be a resource URI.
func resolveURI(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", usageErrorf("empty resource URI")
	}
	uri, err := wsman.ResolveResourceURI(s)
	if err != nil {
		return "", &UsageError{Err: err}
	}
	return uri, nil
}

// xpathNamespaces binds p to the class namespace classNS and the usual
// WS-Management prefixes.
func xpathNamespaces(classNS string) map[string]string {
	return map[string]string{
		"p":   classNS,
		"w":   wsman.NsWSMan,
		"a":   wsman.NsAddressing,
		"s":   wsman.NsSOAP,
		"cim": wsman.NsCIM,
		"xsi": wsman.NsXSI,
	}
}

// checkXPath finds a malformed expression or an undeclared prefix before
// any host is contacted, by evaluating expr once over an empty instance.
func checkXPath(expr string) error {
	const classNS = "urn:bitsremote:xpath-check"
	doc := []byte(`<p:Check xmlns:p="` + classNS + `"/>`)
	if _, err := wsman.EvalXPath(doc, expr, xpathNamespaces(classNS)); err != nil {
		return &UsageError{Err: fmt.Errorf("--xpath: %w", err)}
	}
	return nil
}

// checkPutNames refuses, before anything is sent, a -v property that the
// instance read from the host does not hold exactly once, as
// Set-WSManInstance does: a Put of an instance with an extra or an
// ambiguous property would only earn a fault from the host (or change
// the wrong element). Names match as the Instance does: exactly, else
// without regard to case.
func checkPutNames(in *wsman.Instance, pairs [][2]string) error {
	class := in.ClassName
	if class == "" {
		class = "returned"
	}
	seen := map[string]bool{}
	for _, p := range pairs {
		name := p[0]
		if seen[name] {
			continue
		}
		seen[name] = true
		exact, folded := 0, 0
		for _, pr := range in.Props {
			switch {
			case pr.Name == name:
				exact++
			case strings.EqualFold(pr.Name, name):
				folded++
			}
		}
		n := exact
		if n == 0 {
			n = folded
		}
		switch {
		case n == 0:
			return usageErrorf("put: property %s is not in the %s instance; nothing was sent", name, class)
		case n > 1:
			return usageErrorf("put: property %s occurs %d times in the %s instance (it must occur exactly once); nothing was sent", name, n, class)
		}
	}
	return nil
}
