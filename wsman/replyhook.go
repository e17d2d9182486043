package wsman

import "context"

type replyHookKey struct{}

// WithReplyHook returns a copy of ctx under which each Client operation
// hands fn the raw body of every reply it accepts (a SOAP envelope with
// the right RelatesTo and Action), before reading its result from it.
// It is how a caller looks at the whole reply, headers included, without
// building XML itself: the CLI evaluates --xpath over it with EvalXPath.
//
// op names the operation as errors do ("Get", "Invoke StartJob",
// "Identify"). An enumeration passes its EnumerateResponse and each
// PullResponse, as "Enumerate" and "Pull", before their items are
// yielded; the Release sent after the caller stops is not passed. Faults
// and refused replies come back as errors instead. fn runs on the
// calling goroutine; it must not modify body, which it may keep.
func WithReplyHook(ctx context.Context, fn func(op string, body []byte)) context.Context {
	return context.WithValue(ctx, replyHookKey{}, fn)
}

// traceReply calls the hook of WithReplyHook, if any.
func traceReply(ctx context.Context, op string, body []byte) {
	if fn, ok := ctx.Value(replyHookKey{}).(func(string, []byte)); ok && fn != nil {
		fn(op, body)
	}
}
