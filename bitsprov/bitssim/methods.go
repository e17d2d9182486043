package bitssim

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// cimType is the CIM type of a method parameter.
type cimType int

const (
	tString cimType = iota
	tUint16
	tUint32
	tBool
	tUint8Array
)

type param struct {
	name string
	typ  cimType
}

// methodParams lists each method's [in] parameters with the documented
// casing; input elements are matched case-insensitively, as WMI does
// (AddFile's page spells remoteUrl, SOETools sends RemoteUrl).
var methodParams = map[string][]param{
	"CreateJob": {{"DisplayName", tString}, {"RemoteUrl", tString}, {"LocalFile", tString},
		{"ServiceAccount", tUint16}, {"Type", tUint16}, {"Suspend", tBool}, {"Description", tString}},
	"AddFile":                    {{"RemoteUrl", tString}, {"LocalFile", tString}},
	"SetJobState":                {{"JobState", tUint16}},
	"GetError":                   {{"LanguageId", tUint32}},
	"SetCredentials":             {{"Target", tUint16}, {"Scheme", tUint16}, {"UserName", tString}, {"Password", tString}},
	"RemoveCredentials":          {{"Target", tUint16}, {"Scheme", tUint16}},
	"SetProxySettings":           {{"ProxyUsage", tUint16}, {"ProxyList", tString}, {"ProxyBypassList", tString}},
	"SetClientCertificateById":   {{"CertStoreLocation", tUint16}, {"StoreName", tString}, {"CertHash", tUint8Array}},
	"SetClientCertificateByName": {{"CertStoreLocation", tUint16}, {"StoreName", tString}, {"SubjectName", tString}},
	"RemoveClientCertificate":    {},
}

// args are bound method inputs: canonical name -> values; a parameter that
// was absent or xsi:nil has no entry.
type args map[string][]string

func (a args) str(name string) (string, bool) {
	v, ok := a[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (a args) uint(name string) (uint64, bool) {
	s, ok := a.str(name)
	if !ok {
		return 0, false
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(s), 10, 64) // checked by bind
	return v, true
}

// bind checks the _INPUT against the method's parameters: unknown names
// and values that are not of the parameter's CIM type are faults, as WMI
// refuses to build the in-parameters object from them.
func bind(machine, method string, in *wsman.Instance) (args, error) {
	ps := methodParams[method]
	a := args{}
	if in == nil {
		return a, nil
	}
	for _, prop := range in.Props {
		var pd *param
		for i := range ps {
			if strings.EqualFold(ps[i].name, prop.Name) {
				pd = &ps[i]
			}
		}
		if pd == nil {
			return nil, faultInvalidParameter(machine, wbemInvalidMethodPar,
				fmt.Sprintf("The method %s has no parameter %q.", method, prop.Name))
		}
		var vals []string
		for _, v := range prop.Values {
			if v.Kind == wsman.KindNil {
				continue
			}
			if v.Kind != wsman.KindText {
				return nil, faultInvalidParameter(machine, wbemTypeMismatch,
					fmt.Sprintf("The parameter %s of %s must be a plain value.", pd.name, method))
			}
			t := strings.TrimSpace(v.Text)
			var err error
			switch pd.typ {
			case tUint16:
				_, err = strconv.ParseUint(t, 10, 16)
			case tUint32:
				_, err = strconv.ParseUint(t, 10, 32)
			case tUint8Array:
				_, err = strconv.ParseUint(t, 10, 8)
			case tBool:
				if t != "true" && t != "false" && t != "1" && t != "0" && !strings.EqualFold(t, "true") && !strings.EqualFold(t, "false") {
					err = fmt.Errorf("not a boolean")
				}
			default:
				t = v.Text
			}
			if err != nil {
				return nil, faultInvalidParameter(machine, wbemTypeMismatch,
					fmt.Sprintf("The value %q of parameter %s of %s is not valid for its type.", v.Text, pd.name, method))
			}
			vals = append(vals, t)
		}
		if pd.typ != tUint8Array && len(vals) > 1 {
			return nil, faultInvalidParameter(machine, wbemTypeMismatch,
				fmt.Sprintf("The parameter %s of %s is not an array.", pd.name, method))
		}
		if len(vals) > 0 {
			a[pd.name] = vals
		}
	}
	return a, nil
}

// output builds <Method_OUTPUT> with the out parameters and ReturnValue last.
func output(method string, rv uint32, props ...wsman.Property) *wsman.Instance {
	return &wsman.Instance{
		ClassName:   method + "_OUTPUT",
		ResourceURI: ResourceURI,
		Props:       append(props, textProp("ReturnValue", strconv.FormatUint(uint64(rv), 10))),
	}
}

// Invoke runs a BitsClientJob method. A failure the method reports is its
// non-zero ReturnValue (the BITS HRESULT as uint32), not a fault; faults
// are for what WinRM and WMI refuse before the method runs (selectors,
// unknown methods and parameters, values of the wrong type).
func (p *Provider) Invoke(ctx context.Context, r *wsmantest.Request, method string, input *wsman.Instance) (*wsman.Instance, error) {
	canon := ""
	for m := range methodParams {
		if strings.EqualFold(m, method) {
			canon = m
		}
	}
	if canon == "" {
		return nil, faultActionNotSupported(r.Machine, r.Action)
	}
	a, err := bind(r.Machine, canon, input)
	if err != nil {
		return nil, err
	}
	if canon == "CreateJob" {
		// CreateJob is static: it is called on the class, without selectors.
		if len(r.Selectors) > 0 {
			return nil, faultInvalidSelectors(r.Machine, "UnexpectedSelectors")
		}
		return p.createJob(a), nil
	}
	j, err := p.lookup(r, "ExecMethod")
	if err != nil {
		return nil, err
	}
	j.op.Lock()
	defer j.op.Unlock()
	p.mu.Lock()
	final := j.state.Final()
	p.mu.Unlock()
	if final {
		// [I] A completed or cancelled job refuses every change with
		// BG_E_INVALID_STATE, as the COM job object does. Windows may
		// instead answer "not found" here, since the provider looks the job
		// up again for each call and final jobs have left the queue.
		if canon == "GetError" {
			return output(canon, bgEErrorInfoUnavailable), nil
		}
		return output(canon, bgEInvalidState), nil
	}
	switch canon {
	case "AddFile":
		return output(canon, p.addFile(j, a)), nil
	case "SetJobState":
		return output(canon, p.setJobState(j, a)), nil
	case "GetError":
		return p.getError(j), nil
	case "SetCredentials", "RemoveCredentials":
		return output(canon, p.credentials(j, a, canon == "SetCredentials")), nil
	case "SetProxySettings":
		return output(canon, p.setProxySettings(j, a)), nil
	case "SetClientCertificateById", "SetClientCertificateByName":
		return output(canon, p.setClientCertificate(j, a, canon == "SetClientCertificateById")), nil
	case "RemoveClientCertificate":
		p.mu.Lock()
		j.certStore = ""
		j.modified = p.now()
		p.mu.Unlock()
		return output(canon, sOK), nil
	}
	return nil, faultActionNotSupported(r.Machine, r.Action)
}

var windowsAbs = regexp.MustCompile(`^(?:[A-Za-z]:\\|\\\\)`)

// checkFile validates a RemoteUrl/LocalFile pair as AddFile does: the
// remote name must be an http(s) URL and the local name a full path to a
// file. [I] A local name ending in a separator names a directory, which
// BITS cannot download into (choosing the file name is the job of
// Start-BitsTransfer, not of BITS): E_INVALIDARG, like a relative name,
// rather than a job that transfers and then cannot be completed.
func checkFile(remote, local string) uint32 {
	u, err := url.Parse(remote)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return eInvalidArg
	}
	if !filepath.IsAbs(local) && !windowsAbs.MatchString(local) {
		return eInvalidArg
	}
	if strings.HasSuffix(local, "/") || strings.HasSuffix(local, `\`) {
		return eInvalidArg
	}
	return sOK
}

// createJob implements CreateJob: a job owned by the chosen service
// account (NetworkService by default) with its first file. Suspend
// defaults to false, "transfer immediately", as the method's page says;
// callers that want to configure the job first pass Suspend=true.
func (p *Provider) createJob(a args) *wsman.Instance {
	name, ok1 := a.str("DisplayName")
	remote, ok2 := a.str("RemoteUrl")
	local, ok3 := a.str("LocalFile")
	// [I] With neither RemoteUrl nor LocalFile the job is created empty
	// (files come with AddFile), as the COM CreateJob does; the page marks
	// both [in] but not whether NULL is refused. One without the other is
	// E_INVALIDARG.
	if !ok1 || ok2 != ok3 {
		return output("CreateJob", eInvalidArg)
	}
	acct := bitsprov.AccountNetworkService
	if v, ok := a.uint("ServiceAccount"); ok {
		if !bitsprov.ServiceAccount(v).Valid() {
			return output("CreateJob", eInvalidArg)
		}
		acct = bitsprov.ServiceAccount(v)
	}
	typ := bitsprov.TypeDownload
	if v, ok := a.uint("Type"); ok {
		// The provider documents only Download and Upload.
		if v > uint64(bitsprov.TypeUpload) {
			return output("CreateJob", eInvalidArg)
		}
		typ = bitsprov.JobType(v)
	}
	suspend := false
	if s, ok := a.str("Suspend"); ok {
		suspend = strings.EqualFold(s, "true") || s == "1"
	}
	desc, _ := a.str("Description")
	if wcharLen(name) > 256 || wcharLen(desc) > 1024 {
		return output("CreateJob", bgEStringTooLong)
	}
	if ok2 {
		if rv := checkFile(remote, local); rv != sOK {
			return output("CreateJob", rv)
		}
	}
	now := p.now()
	j := &job{
		id:                newGUID(),
		displayName:       name,
		description:       desc,
		typ:               typ,
		priority:          bitsprov.PriorityNormal,
		state:             bitsprov.StateSuspended,
		account:           acct,
		created:           now,
		modified:          now,
		retryDelay:        defaultRetryDelay,
		noProgressTimeout: defaultNoProgressTimeout,
		creds:             map[[2]uint16][2]string{},
	}
	if ok2 {
		j.files = append(j.files, p.newFile(remote, local))
	}
	p.mu.Lock()
	p.seq++
	j.seq = p.seq
	p.jobs[j.id] = j
	if !suspend && len(j.files) > 0 {
		j.state = bitsprov.StateQueued
		j.progressAt = now
		p.scheduleLocked()
	}
	p.mu.Unlock()
	return output("CreateJob", sOK, textProp("JobId", j.id))
}

func (p *Provider) newFile(remote, local string) *file {
	f := &file{remoteURL: remote, localFile: local, total: sizeUnknown, path: p.hostPath(local)}
	if f.path != "" {
		// BITS downloads into a hidden BIT*.tmp beside the destination and
		// renames it on Complete.
		f.tmp = filepath.Join(filepath.Dir(f.path), "BIT"+strings.Trim(newGUID()[1:9], "-")+".tmp")
	}
	return f
}

// hostPath maps a job's LocalFile to a path on this machine: an absolute
// path of this OS is used as it is; a Windows path (C:\dir\f, \\srv\share\f)
// goes under Config.LocalRoot (LocalRoot/C/dir/f, LocalRoot/UNC/srv/share/f)
// and, without a LocalRoot, maps to nothing, so that a transfer fails with
// ERROR_PATH_NOT_FOUND instead of writing into the working directory.
func (p *Provider) hostPath(local string) string {
	if !windowsAbs.MatchString(local) {
		if filepath.IsAbs(local) {
			return filepath.Clean(local)
		}
		return ""
	}
	if p.cfg.LocalRoot == "" {
		return ""
	}
	// ".." stops at the drive (or share) as it does on Windows.
	if strings.HasPrefix(local, `\\`) {
		parts := strings.SplitN(strings.ReplaceAll(local[2:], `\`, "/"), "/", 3)
		if len(parts) < 3 {
			return ""
		}
		return filepath.Join(p.cfg.LocalRoot, "UNC", parts[0], parts[1], filepath.FromSlash(path.Clean("/"+parts[2])))
	}
	rest := path.Clean("/" + strings.ReplaceAll(local[3:], `\`, "/"))
	return filepath.Join(p.cfg.LocalRoot, strings.ToUpper(local[:1]), filepath.FromSlash(rest))
}

// addFile implements AddFile. Upload jobs hold exactly one file.
func (p *Provider) addFile(j *job, a args) uint32 {
	remote, ok1 := a.str("RemoteUrl")
	local, ok2 := a.str("LocalFile")
	if !ok1 || !ok2 {
		return eInvalidArg
	}
	if rv := checkFile(remote, local); rv != sOK {
		return rv
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.typ != bitsprov.TypeDownload && len(j.files) >= 1 {
		return bgETooManyFiles
	}
	j.files = append(j.files, p.newFile(remote, local))
	j.modified = p.now()
	// A transferred job has work again (AddFile refuses only final jobs).
	if j.state == bitsprov.StateTransferred {
		j.gen++
		j.state = bitsprov.StateQueued
		j.progressAt = j.modified
		p.scheduleLocked()
	}
	return sOK
}

// setJobState implements SetJobState's four actions with the transitions
// of spec/bits-provider.md §2.3.
func (p *Provider) setJobState(j *job, a args) uint32 {
	v, ok := a.uint("JobState")
	if !ok || !bitsprov.JobAction(v).Valid() {
		return eInvalidArg
	}
	switch bitsprov.JobAction(v) {
	case bitsprov.ActionResume:
		p.mu.Lock()
		defer p.mu.Unlock()
		switch j.state {
		case bitsprov.StateSuspended, bitsprov.StateError, bitsprov.StateTransientError:
			if len(j.files) == 0 {
				return bgEEmpty
			}
			j.gen++
			j.state = bitsprov.StateQueued
			j.progressAt = p.now()
			j.modified = j.progressAt
			p.scheduleLocked()
		}
		// Resume in an action state, or of a transferred job, changes nothing.
		return sOK
	case bitsprov.ActionSuspend:
		p.mu.Lock()
		j.gen++
		r := p.detachLocked(j)
		if j.state != bitsprov.StateSuspended {
			j.state = bitsprov.StateSuspended
			j.modified = p.now()
		}
		p.scheduleLocked()
		p.mu.Unlock()
		r.stop()
		return sOK
	case bitsprov.ActionCancel:
		return p.cancelJob(j)
	default:
		return p.completeJob(j)
	}
}

// cancelJob removes the job: its partial and finished temporary files are
// deleted and an upload session is cancelled on the server.
func (p *Provider) cancelJob(j *job) uint32 {
	p.mu.Lock()
	j.gen++
	r := p.detachLocked(j)
	j.state = bitsprov.StateCancelled
	j.modified = p.now()
	files := j.snapshotFiles()
	typ, session := j.typ, j.session
	t := &transferCtx{p: p, j: j}
	j.settings(t)
	p.scheduleLocked()
	p.mu.Unlock()
	r.stop()
	var rv uint32
	if typ == bitsprov.TypeDownload {
		for _, f := range files {
			if f.tmp == "" {
				continue
			}
			if err := os.Remove(f.tmp); err != nil && !os.IsNotExist(err) {
				rv = bgSUnableToDeleteFiles
			}
		}
	} else if session != "" && len(files) == 1 {
		ctx, cancel := context.WithTimeout(p.ctx, p.scaled(30)+minHTTPWait)
		_ = t.uploadPacket(ctx, files[0].remoteURL, session, "Cancel-Session")
		cancel()
	}
	return rv
}

// completeJob makes the files available. Downloads may be completed in any
// non-final state: finished files are renamed into place, unfinished ones
// deleted, and BG_S_PARTIAL_COMPLETE says so. Uploads must be Transferred;
// Complete then closes the upload session so that the server commits the
// file. [I] That the client sends Close-Session at Complete mirrors the
// download rule that files appear only on Complete.
func (p *Provider) completeJob(j *job) uint32 {
	p.mu.Lock()
	if j.typ != bitsprov.TypeDownload && j.state != bitsprov.StateTransferred {
		p.mu.Unlock()
		return bgEInvalidState
	}
	j.gen++
	r := p.detachLocked(j)
	files := j.snapshotFiles()
	typ, session := j.typ, j.session
	t := &transferCtx{p: p, j: j}
	j.settings(t)
	p.scheduleLocked()
	p.mu.Unlock()
	r.stop()

	var rv uint32
	if typ != bitsprov.TypeDownload {
		ctx, cancel := context.WithTimeout(p.ctx, p.scaled(30)+minHTTPWait)
		err := t.uploadPacket(ctx, files[0].remoteURL, session, "Close-Session")
		cancel()
		if err != nil {
			return err.code
		}
	} else {
		partial := false
		for _, f := range files {
			if !f.completed {
				partial = true
				_ = os.Remove(f.tmp)
				continue
			}
			if err := os.Rename(f.tmp, f.path); err != nil {
				// The job stays where it was; the caller may retry.
				return localFileCode(err)
			}
		}
		if partial {
			rv = bgSPartialComplete
		}
	}
	p.mu.Lock()
	j.state = bitsprov.StateAcknowledged
	j.modified = p.now()
	p.mu.Unlock()
	return rv
}

// getError implements GetError: error information exists only in Error and
// TransientError.
func (p *Provider) getError(j *job) *wsman.Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.err == nil || (j.state != bitsprov.StateError && j.state != bitsprov.StateTransientError) {
		return output("GetError", bgEErrorInfoUnavailable)
	}
	e := j.err
	return output("GetError", sOK,
		textProp("ContextDescription", contextDescriptions[e.context]),
		textProp("ErrorCode", strconv.FormatUint(uint64(e.code), 10)),
		textProp("ErrorContext", strconv.FormatUint(uint64(e.context), 10)),
		textProp("ErrorDescription", describe(e.code)),
	)
}

// credentials implements SetCredentials and RemoveCredentials with the
// provider's 0-based Target (0 server, 1 proxy) and Scheme (0 Basic …
// 4 Passport) tables. Server Basic credentials are used by transfers.
func (p *Provider) credentials(j *job, a args, set bool) uint32 {
	t, ok1 := a.uint("Target")
	s, ok2 := a.uint("Scheme")
	if !ok1 || !bitsprov.CredentialTarget(t).Valid() {
		return bgEInvalidAuthTarget
	}
	if !ok2 || !bitsprov.CredentialScheme(s).Valid() {
		return bgEInvalidAuthScheme
	}
	key := [2]uint16{uint16(t), uint16(s)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if set {
		user, _ := a.str("UserName")
		pass, _ := a.str("Password")
		if len(user) > 300 {
			return bgEUsernameTooLarge
		}
		if len(pass) > 65536 {
			return bgEPasswordTooLarge
		}
		// NULL credentials are allowed only for NTLM and Negotiate
		// (E_INVALIDARG otherwise, TechNet Event ID 61).
		if _, ok := a["UserName"]; !ok && s != uint64(bitsprov.SchemeNTLM) && s != uint64(bitsprov.SchemeNegotiate) {
			return eInvalidArg
		}
		j.creds[key] = [2]string{user, pass}
	} else {
		delete(j.creds, key)
	}
	j.modified = p.now()
	return sOK
}

// setProxySettings implements SetProxySettings: the lists must be NULL
// unless ProxyUsage is 2 (override), which needs a proxy list.
func (p *Provider) setProxySettings(j *job, a args) uint32 {
	u, ok := a.uint("ProxyUsage")
	if !ok || !bitsprov.ProxyUsage(u).Valid() {
		return eInvalidArg
	}
	list, hasList := a.str("ProxyList")
	bypass, hasBypass := a.str("ProxyBypassList")
	if bitsprov.ProxyUsage(u) != bitsprov.ProxyOverride {
		if hasList || hasBypass {
			return eInvalidArg
		}
	} else if !hasList || strings.TrimSpace(list) == "" {
		return eInvalidArg
	}
	if len(list) > 32768 {
		return bgEProxyListTooLarge
	}
	if len(bypass) > 32768 {
		return bgEProxyBypassTooLarge
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	j.proxyUsage, j.proxyList, j.bypassList = bitsprov.ProxyUsage(u), list, bypass
	j.modified = p.now()
	return sOK
}

// setClientCertificate implements SetClientCertificateById/ByName. The
// simulated host has no certificate store, so any well-formed request is
// recorded: a store location 0-7, a store name, and a 20-byte SHA-1 hash or
// a subject name.
func (p *Provider) setClientCertificate(j *job, a args, byID bool) uint32 {
	loc, ok := a.uint("CertStoreLocation")
	if !ok || !bitsprov.CertStoreLocation(loc).Valid() {
		return eInvalidArg
	}
	store, ok := a.str("StoreName")
	if !ok || store == "" {
		return eInvalidArg
	}
	what := ""
	if byID {
		if len(a["CertHash"]) != 20 {
			return eInvalidArg
		}
		what = strings.Join(a["CertHash"], ",")
	} else {
		subj, ok := a.str("SubjectName")
		if !ok || subj == "" {
			return eInvalidArg
		}
		what = subj
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	j.certStore = fmt.Sprintf("%d/%s/%s", loc, store, what)
	j.modified = p.now()
	return sOK
}
