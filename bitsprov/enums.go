package bitsprov

import (
	"fmt"
	"strconv"
	"strings"
)

// enumDef describes one provider enumeration: its type name for errors, the
// canonical names in value order, the COM prefix callers may paste
// (BG_JOB_STATE_ERROR), and extra spellings (bitsadmin, PowerShell).
type enumDef struct {
	what    string
	names   []string
	prefix  string         // normalised COM prefix, e.g. "bgjobstate"
	aliases map[string]int // normalised alias -> value
}

// norm lower-cases s and drops '_', '-' and spaces so that "Transient_Error",
// "TRANSIENT-ERROR" and "TransientError" compare equal.
func norm(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.TrimSpace(s) {
		switch r {
		case '_', '-', ' ':
			continue
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

func (d *enumDef) str(v uint64) string {
	if v < uint64(len(d.names)) {
		return d.names[v]
	}
	return fmt.Sprintf("%s(%d)", d.what, v)
}

func (d *enumDef) valid(v uint64) bool { return v < uint64(len(d.names)) }

// parse accepts a canonical name, an alias, a COM name or a decimal number.
func (d *enumDef) parse(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("bitsprov: empty %s (want one of %s)", d.what, strings.Join(d.names, ", "))
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64); err == nil {
		if !d.valid(n) {
			return 0, fmt.Errorf("bitsprov: %s %d out of range (0-%d)", d.what, n, len(d.names)-1)
		}
		return int(n), nil
	}
	k := norm(s)
	if d.prefix != "" {
		k = strings.TrimPrefix(k, d.prefix)
	}
	for i, n := range d.names {
		if norm(n) == k {
			return i, nil
		}
	}
	if v, ok := d.aliases[k]; ok {
		return v, nil
	}
	return 0, fmt.Errorf("bitsprov: unknown %s %q (want one of %s, or a number 0-%d)",
		d.what, s, strings.Join(d.names, ", "), len(d.names)-1)
}

// State is a job's BG_JOB_STATE, the provider's State property (uint16).
type State uint16

// Job states (BG_JOB_STATE).
const (
	StateQueued         State = 0
	StateConnecting     State = 1
	StateTransferring   State = 2
	StateSuspended      State = 3
	StateError          State = 4
	StateTransientError State = 5
	StateTransferred    State = 6
	StateAcknowledged   State = 7
	StateCancelled      State = 8
)

var stateDef = enumDef{
	what:   "state",
	names:  []string{"Queued", "Connecting", "Transferring", "Suspended", "Error", "TransientError", "Transferred", "Acknowledged", "Cancelled"},
	prefix: "bgjobstate",
	// bitsadmin prints "Canceled" with one l.
	aliases: map[string]int{"canceled": 8},
}

// String returns the PowerShell JobState name ("TransientError", "Cancelled").
func (s State) String() string { return stateDef.str(uint64(s)) }

// Valid reports whether s is one of the nine defined states.
func (s State) Valid() bool { return stateDef.valid(uint64(s)) }

// Final reports whether the job has left the queue (Acknowledged or
// Cancelled): no further action is possible and the job no longer
// appears in enumerations.
func (s State) Final() bool { return s == StateAcknowledged || s == StateCancelled }

// Active reports whether BITS is working on the job on its own (the
// life-cycle doc's "action" states: Queued, Connecting, Transferring,
// TransientError); the caller only has to wait.
func (s State) Active() bool {
	switch s {
	case StateQueued, StateConnecting, StateTransferring, StateTransientError:
		return true
	}
	return false
}

// MarshalText renders the name, so JSON shows "Transferring".
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts what ParseState accepts.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err == nil {
		*s = v
	}
	return err
}

// ParseState accepts a state name case-insensitively (also the bitsadmin
// spellings "Transient_Error" and "Canceled" and COM names such as
// BG_JOB_STATE_ERROR) or a number 0-8.
func ParseState(s string) (State, error) {
	v, err := stateDef.parse(s)
	return State(v), err
}

// Priority is BG_JOB_PRIORITY, the provider's Priority property (uint32).
type Priority uint32

// Job priorities (BG_JOB_PRIORITY).
const (
	PriorityForeground Priority = 0
	PriorityHigh       Priority = 1
	PriorityNormal     Priority = 2
	PriorityLow        Priority = 3
)

var priorityDef = enumDef{
	what:   "priority",
	names:  []string{"Foreground", "High", "Normal", "Low"},
	prefix: "bgjobpriority",
}

// String returns "Foreground", "High", "Normal" or "Low".
func (p Priority) String() string { return priorityDef.str(uint64(p)) }

// Valid reports whether p is a defined priority.
func (p Priority) Valid() bool { return priorityDef.valid(uint64(p)) }

// MarshalText renders the name.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts what ParsePriority accepts.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err == nil {
		*p = v
	}
	return err
}

// ParsePriority accepts a name case-insensitively or a number 0-3.
func ParsePriority(s string) (Priority, error) {
	v, err := priorityDef.parse(s)
	return Priority(v), err
}

// JobType is BG_JOB_TYPE (CreateJob's Type parameter, uint16). The
// provider documents only Download and Upload; UploadReply is the COM
// value and is kept so a job reported by a host can be shown.
type JobType uint16

// Job types (BG_JOB_TYPE).
const (
	TypeDownload    JobType = 0
	TypeUpload      JobType = 1
	TypeUploadReply JobType = 2
)

var jobTypeDef = enumDef{
	what:    "job type",
	names:   []string{"Download", "Upload", "UploadReply"},
	prefix:  "bgjobtype",
	aliases: map[string]int{"/download": 0, "/upload": 1, "/uploadreply": 2},
}

// String returns "Download", "Upload" or "UploadReply".
func (t JobType) String() string { return jobTypeDef.str(uint64(t)) }

// Valid reports whether t is a defined job type.
func (t JobType) Valid() bool { return jobTypeDef.valid(uint64(t)) }

// MarshalText renders the name.
func (t JobType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts what ParseJobType accepts.
func (t *JobType) UnmarshalText(b []byte) error {
	v, err := ParseJobType(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// ParseJobType accepts a name case-insensitively ("upload-reply" too) or a
// number 0-2.
func ParseJobType(s string) (JobType, error) {
	v, err := jobTypeDef.parse(s)
	return JobType(v), err
}

// JobAction is SetJobState's JobState parameter (uint16). These are
// actions, not states: 0 is Cancel, not Queued.
type JobAction uint16

// Actions of SetJobState.
const (
	ActionCancel   JobAction = 0
	ActionComplete JobAction = 1
	ActionResume   JobAction = 2
	ActionSuspend  JobAction = 3
)

var jobActionDef = enumDef{
	what:  "job action",
	names: []string{"Cancel", "Complete", "Resume", "Suspend"},
	// PowerShell verbs and state-like words people type.
	aliases: map[string]int{"remove": 0, "cancelled": 0, "canceled": 0, "acknowledge": 1, "start": 2, "pause": 3},
}

// String returns "Cancel", "Complete", "Resume" or "Suspend".
func (a JobAction) String() string { return jobActionDef.str(uint64(a)) }

// Valid reports whether a is a defined action.
func (a JobAction) Valid() bool { return jobActionDef.valid(uint64(a)) }

// ParseJobAction accepts a name case-insensitively or a number 0-3.
func ParseJobAction(s string) (JobAction, error) {
	v, err := jobActionDef.parse(s)
	return JobAction(v), err
}

// ServiceAccount is CreateJob's ServiceAccount parameter (uint16): the
// account that owns the job. The provider's default is NetworkService.
type ServiceAccount uint16

// Service accounts that may own provider jobs.
const (
	AccountLocalSystem    ServiceAccount = 0
	AccountLocalService   ServiceAccount = 1
	AccountNetworkService ServiceAccount = 2
)

var serviceAccountDef = enumDef{
	what:    "service account",
	names:   []string{"LocalSystem", "LocalService", "NetworkService"},
	aliases: map[string]int{"system": 0, "ntauthority\\system": 0, "ntauthority\\localservice": 1, "ntauthority\\networkservice": 2},
}

// String returns "LocalSystem", "LocalService" or "NetworkService".
func (a ServiceAccount) String() string { return serviceAccountDef.str(uint64(a)) }

// Valid reports whether a is a defined account.
func (a ServiceAccount) Valid() bool { return serviceAccountDef.valid(uint64(a)) }

// ParseServiceAccount accepts a name case-insensitively or a number 0-2.
func ParseServiceAccount(s string) (ServiceAccount, error) {
	v, err := serviceAccountDef.parse(s)
	return ServiceAccount(v), err
}

// ProxyUsage is BG_JOB_PROXY_USAGE, SetProxySettings' ProxyUsage (uint16).
type ProxyUsage uint16

// Proxy usages.
const (
	ProxyPreconfig  ProxyUsage = 0
	ProxyNoProxy    ProxyUsage = 1
	ProxyOverride   ProxyUsage = 2
	ProxyAutoDetect ProxyUsage = 3
)

var proxyUsageDef = enumDef{
	what:   "proxy usage",
	names:  []string{"Preconfig", "NoProxy", "Override", "AutoDetect"},
	prefix: "bgjobproxyusage",
	// Start-BitsTransfer calls Preconfig "SystemDefault".
	aliases: map[string]int{"systemdefault": 0, "default": 0, "none": 1},
}

// String returns "Preconfig", "NoProxy", "Override" or "AutoDetect".
func (u ProxyUsage) String() string { return proxyUsageDef.str(uint64(u)) }

// Valid reports whether u is a defined usage.
func (u ProxyUsage) Valid() bool { return proxyUsageDef.valid(uint64(u)) }

// ParseProxyUsage accepts a name case-insensitively (also PowerShell's
// "SystemDefault") or a number 0-3.
func ParseProxyUsage(s string) (ProxyUsage, error) {
	v, err := proxyUsageDef.parse(s)
	return ProxyUsage(v), err
}

// CredentialTarget is SetCredentials' Target in the provider's 0-based
// numbering (0 Server, 1 Proxy). COM's BG_AUTH_TARGET is 1-based; see
// COMValue.
type CredentialTarget uint16

// Credential targets (provider numbering).
const (
	TargetServer CredentialTarget = 0
	TargetProxy  CredentialTarget = 1
)

var credentialTargetDef = enumDef{
	what:   "credential target",
	names:  []string{"Server", "Proxy"},
	prefix: "bgauthtarget",
}

// String returns "Server" or "Proxy".
func (t CredentialTarget) String() string { return credentialTargetDef.str(uint64(t)) }

// Valid reports whether t is a defined target.
func (t CredentialTarget) Valid() bool { return credentialTargetDef.valid(uint64(t)) }

// COMValue returns the 1-based BG_AUTH_TARGET value for the same target.
func (t CredentialTarget) COMValue() uint32 { return uint32(t) + 1 }

// ParseCredentialTarget accepts "Server" or "Proxy" case-insensitively or
// a provider number 0-1.
func ParseCredentialTarget(s string) (CredentialTarget, error) {
	v, err := credentialTargetDef.parse(s)
	return CredentialTarget(v), err
}

// CredentialScheme is SetCredentials' Scheme in the provider's 0-based
// numbering (0 Basic … 4 Passport). COM's BG_AUTH_SCHEME is 1-based.
type CredentialScheme uint16

// Credential schemes (provider numbering).
const (
	SchemeBasic     CredentialScheme = 0
	SchemeDigest    CredentialScheme = 1
	SchemeNTLM      CredentialScheme = 2
	SchemeNegotiate CredentialScheme = 3
	SchemePassport  CredentialScheme = 4
)

var credentialSchemeDef = enumDef{
	what:   "credential scheme",
	names:  []string{"Basic", "Digest", "NTLM", "Negotiate", "Passport"},
	prefix: "bgauthscheme",
}

// String returns "Basic", "Digest", "NTLM", "Negotiate" or "Passport".
func (s CredentialScheme) String() string { return credentialSchemeDef.str(uint64(s)) }

// Valid reports whether s is a defined scheme.
func (s CredentialScheme) Valid() bool { return credentialSchemeDef.valid(uint64(s)) }

// COMValue returns the 1-based BG_AUTH_SCHEME value for the same scheme.
func (s CredentialScheme) COMValue() uint32 { return uint32(s) + 1 }

// ParseCredentialScheme accepts a name case-insensitively or a provider
// number 0-4.
func ParseCredentialScheme(s string) (CredentialScheme, error) {
	v, err := credentialSchemeDef.parse(s)
	return CredentialScheme(v), err
}

// ErrorContext is BG_ERROR_CONTEXT, GetError's ErrorContext (uint32): where
// the error happened.
type ErrorContext uint32

// Error contexts.
const (
	ContextNone                      ErrorContext = 0
	ContextUnknown                   ErrorContext = 1
	ContextGeneralQueueManager       ErrorContext = 2
	ContextQueueManagerNotification  ErrorContext = 3
	ContextLocalFile                 ErrorContext = 4
	ContextRemoteFile                ErrorContext = 5
	ContextGeneralTransport          ErrorContext = 6
	ContextRemoteApplication         ErrorContext = 7
	ContextServerCertificateCallback ErrorContext = 8
)

var errorContextDef = enumDef{
	what: "error context",
	names: []string{"None", "Unknown", "GeneralQueueManager", "QueueManagerNotification",
		"LocalFile", "RemoteFile", "GeneralTransport", "RemoteApplication", "ServerCertificateCallback"},
	prefix: "bgerrorcontext",
}

// String returns the context name ("RemoteFile").
func (c ErrorContext) String() string { return errorContextDef.str(uint64(c)) }

// Valid reports whether c is a defined context.
func (c ErrorContext) Valid() bool { return errorContextDef.valid(uint64(c)) }

// MarshalText renders the name.
func (c ErrorContext) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseErrorContext accepts a name case-insensitively or a number 0-8.
func ParseErrorContext(s string) (ErrorContext, error) {
	v, err := errorContextDef.parse(s)
	return ErrorContext(v), err
}

// CertStoreLocation is BG_CERT_STORE_LOCATION, the CertStoreLocation
// parameter of SetClientCertificateById/ByName (uint16).
type CertStoreLocation uint16

// Certificate store locations.
const (
	StoreCurrentUser             CertStoreLocation = 0
	StoreLocalMachine            CertStoreLocation = 1
	StoreCurrentService          CertStoreLocation = 2
	StoreServices                CertStoreLocation = 3
	StoreUsers                   CertStoreLocation = 4
	StoreCurrentUserGroupPolicy  CertStoreLocation = 5
	StoreLocalMachineGroupPolicy CertStoreLocation = 6
	StoreLocalMachineEnterprise  CertStoreLocation = 7
)

var certStoreLocationDef = enumDef{
	what: "certificate store location",
	names: []string{"CurrentUser", "LocalMachine", "CurrentService", "Services", "Users",
		"CurrentUserGroupPolicy", "LocalMachineGroupPolicy", "LocalMachineEnterprise"},
	prefix: "bgcertstorelocation",
}

// String returns the location name ("LocalMachine").
func (l CertStoreLocation) String() string { return certStoreLocationDef.str(uint64(l)) }

// Valid reports whether l is a defined location.
func (l CertStoreLocation) Valid() bool { return certStoreLocationDef.valid(uint64(l)) }

// ParseCertStoreLocation accepts a name case-insensitively (also COM names
// such as BG_CERT_STORE_LOCATION_LOCAL_MACHINE) or a number 0-7.
func ParseCertStoreLocation(s string) (CertStoreLocation, error) {
	v, err := certStoreLocationDef.parse(s)
	return CertStoreLocation(v), err
}
