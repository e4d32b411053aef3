package engines

import (
	"net/url"
	"strings"
)

// RedactURL hides the credentials a URL may carry: user information
// (user:password@ becomes redacted@) and the values of query parameters
// whose names look secret (key, token, secret, password, auth, sig,
// credential, in any case and as part of a longer name such as api_key or
// access_token). A string that does not parse as a URL is redacted
// conservatively: anything before an '@' in its authority and its whole
// query are hidden.
func RedactURL(u string) string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || p.Opaque != "" {
		return redactUnparsable(u)
	}
	if p.User != nil {
		p.User = url.User("redacted")
	}
	if p.RawQuery != "" {
		p.RawQuery = redactQuery(p.RawQuery)
	}
	return p.String()
}

// secretParamWords are substrings of query parameter names whose values
// are hidden.
var secretParamWords = []string{"key", "token", "secret", "password", "passwd", "auth", "sig", "credential", "session"}

func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, part := range parts {
		name, _, hasValue := strings.Cut(part, "=")
		if !hasValue {
			continue
		}
		lname := strings.ToLower(name)
		if n, err := url.QueryUnescape(name); err == nil {
			lname = strings.ToLower(n)
		}
		for _, w := range secretParamWords {
			if strings.Contains(lname, w) {
				parts[i] = name + "=REDACTED"
				break
			}
		}
	}
	return strings.Join(parts, "&")
}

func redactUnparsable(u string) string {
	rest := u
	prefix := ""
	if i := strings.Index(u, "://"); i >= 0 {
		prefix, rest = u[:i+3], u[i+3:]
	}
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	if at := strings.LastIndex(rest[:authEnd], "@"); at >= 0 {
		rest = "redacted" + rest[at:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q] + "?REDACTED"
	}
	return prefix + rest
}

// Redact replaces every occurrence of each secret in s with "[REDACTED]".
// Secrets shorter than 4 bytes are ignored: replacing them would mangle
// ordinary text while protecting nothing worth protecting.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < 4 {
			continue
		}
		s = strings.ReplaceAll(s, sec, redacted)
		// Secrets can also appear URL-escaped, e.g. inside an echoed URL.
		if esc := url.QueryEscape(sec); esc != sec {
			s = strings.ReplaceAll(s, esc, redacted)
		}
	}
	return s
}
