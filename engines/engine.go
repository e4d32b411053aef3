package engines

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Profile selects how requests are built for an engine family.
type Profile string

const (
	// VLLM sends max_tokens, min_tokens, ignore_eos and asks for continuous usage.
	VLLM Profile = "vllm"
	// Friendli sends max_tokens with min_tokens = max_tokens and final usage,
	// authenticating with FRIENDLI_TOKEN and X-Friendli-Team.
	Friendli Profile = "friendli"
	// OpenAI is the generic OpenAI-compatible profile: max_tokens and final usage.
	OpenAI Profile = "openai"
)

// Default URLs of the shorthand engine specs.
const (
	DefaultVLLMURL      = "http://localhost:8000/v1/chat/completions"
	DefaultFriendliURL  = "http://localhost:9000/v1/chat/completions"
	FriendliServerless  = "https://api.friendli.ai/serverless/v1/chat/completions"
	FriendliDedicated   = "https://api.friendli.ai/dedicated/v1/chat/completions"
	chatCompletionsPath = "/chat/completions"
)

// Environment variables that carry credentials.
const (
	EnvFriendliToken = "FRIENDLI_TOKEN"
	EnvFriendliTeam  = "FRIENDLI_TEAM"
	EnvOpenAIKey     = "OPENAI_API_KEY"
)

// Engine is one engine under test. Its secrets (APIKey, Team) never appear
// in its string forms or its JSON.
type Engine struct {
	// Name labels the engine in results, e.g. "vllm" or "my-sglang".
	Name string `json:"name"`
	// Profile selects the request body and headers.
	Profile Profile `json:"profile"`
	// URL is the full chat-completions URL.
	URL string `json:"url"`
	// Model is the model field; "" means discover it from GET /v1/models.
	Model string `json:"model,omitempty"`
	// APIKey is sent as a Bearer token; it is never printed or serialised.
	APIKey string `json:"-"`
	// Team is Friendli's X-Friendli-Team header; never printed or serialised.
	Team string `json:"-"`
	// Simulated marks a simulated engine (fake/): every output must say so.
	Simulated bool `json:"simulated,omitempty"`
	// InsecureSkipVerify disables TLS certificate checks; the caller warns
	// when it is on.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// String returns the engine's name and its redacted URL.
func (e Engine) String() string {
	return fmt.Sprintf("%s (%s)", e.Name, RedactURL(e.URL))
}

// GoString returns a Go-syntax form with the URL redacted and the secrets
// replaced, so that %#v cannot leak them.
func (e Engine) GoString() string {
	return fmt.Sprintf("engines.Engine{Name:%q, Profile:%q, URL:%q, Model:%q, APIKey:%q, Team:%q, Simulated:%t, InsecureSkipVerify:%t}",
		e.Name, e.Profile, RedactURL(e.URL), e.Model, mask(e.APIKey), mask(e.Team), e.Simulated, e.InsecureSkipVerify)
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s,
// %q, ...) goes through the redacted forms.
func (e Engine) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, e.GoString())
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "{Name:%s Profile:%s URL:%s Model:%s APIKey:%s Team:%s Simulated:%t InsecureSkipVerify:%t}",
			e.Name, e.Profile, RedactURL(e.URL), e.Model, mask(e.APIKey), mask(e.Team), e.Simulated, e.InsecureSkipVerify)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.String())
	default:
		fmt.Fprint(f, e.String())
	}
}

// MarshalJSON writes the engine without its secrets and with its URL redacted.
func (e Engine) MarshalJSON() ([]byte, error) {
	type plain Engine // drops the methods, keeps the tags
	p := plain(e)
	p.URL = RedactURL(e.URL)
	p.APIKey, p.Team = "", ""
	return json.Marshal(p)
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

const redacted = "[REDACTED]"

// Parse turns one -engines item into an Engine. The forms are:
//
//	vllm                      http://localhost:8000/v1/chat/completions, VLLM profile
//	friendli                  http://localhost:9000/v1/chat/completions, Friendli profile (Friendli Container)
//	friendli-serverless       https://api.friendli.ai/serverless/v1/chat/completions (needs FRIENDLI_TOKEN)
//	friendli-dedicated        https://api.friendli.ai/dedicated/v1/chat/completions (needs FRIENDLI_TOKEN)
//	NAME=URL                  any server; the profile comes from NAME
//	NAME@MODEL, NAME@MODEL=URL  the same with the model field fixed to MODEL
//
// NAME is letters, digits, '.', '_' and '-'. The profile is VLLM when NAME
// is "vllm" or starts with "vllm-", Friendli when it is "friendli" or
// starts with "friendli-", and OpenAI (generic) otherwise. MODEL is
// everything between '@' and the first '=' (model IDs may hold '/' and
// ':'); without it the model is discovered from GET /v1/models.
//
// URL must be http or https with a host. A base URL is completed: an empty
// path or "/" becomes /v1/chat/completions, and a path ending in /v1
// gets /chat/completions appended. Any other path is used as given.
//
// Credentials come from getenv (nil means os.Getenv): the Friendli profile
// reads FRIENDLI_TOKEN (Bearer) and FRIENDLI_TEAM (X-Friendli-Team); the
// others read OPENAI_API_KEY when it is set.
func Parse(spec string, getenv func(string) string) (Engine, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return Engine{}, errors.New("empty engine spec (examples: vllm, friendli, mine=http://127.0.0.1:8000/v1/chat/completions)")
	}
	left, rawURL, hasURL := strings.Cut(spec, "=")
	if !hasURL && strings.Contains(spec, "://") {
		return Engine{}, fmt.Errorf("engine spec %q: a URL needs a name: write NAME=URL, e.g. mine=%s", RedactURL(spec), RedactURL(spec))
	}
	name, model, hasModel := strings.Cut(left, "@")
	name = strings.TrimSpace(name)
	model = strings.TrimSpace(model)
	if err := checkName(name); err != nil {
		return Engine{}, fmt.Errorf("engine spec %q: %w", redactSpec(spec), err)
	}
	if hasModel && model == "" {
		return Engine{}, fmt.Errorf("engine spec %q: empty model after '@' (write NAME@MODEL or NAME@MODEL=URL)", redactSpec(spec))
	}
	e := Engine{Name: name, Model: model, Profile: profileOf(name)}
	var needToken bool
	if hasURL {
		u, err := normalizeURL(strings.TrimSpace(rawURL))
		if err != nil {
			return Engine{}, fmt.Errorf("engine %s: %w", name, err)
		}
		e.URL = u
	} else {
		switch name {
		case "vllm":
			e.URL = DefaultVLLMURL
		case "friendli":
			e.URL = DefaultFriendliURL
		case "friendli-serverless":
			e.URL, needToken = FriendliServerless, true
		case "friendli-dedicated":
			e.URL, needToken = FriendliDedicated, true
		default:
			return Engine{}, fmt.Errorf("engine spec %q: unknown engine %q; known shorthands are vllm, friendli, friendli-serverless and friendli-dedicated, otherwise write NAME=URL", redactSpec(spec), name)
		}
	}
	switch e.Profile {
	case Friendli:
		e.APIKey = strings.TrimSpace(getenv(EnvFriendliToken))
		e.Team = strings.TrimSpace(getenv(EnvFriendliTeam))
		if needToken && e.APIKey == "" {
			return Engine{}, fmt.Errorf("engine %s (%s): no API token: set %s to a Friendli personal access token", name, e.URL, EnvFriendliToken)
		}
	default:
		e.APIKey = strings.TrimSpace(getenv(EnvOpenAIKey))
	}
	return e, nil
}

// ParseList parses a comma-separated list of engine specs (see Parse).
// Empty items are skipped; names must be unique.
func ParseList(list string, getenv func(string) string) ([]Engine, error) {
	var out []Engine
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		e, err := Parse(item, getenv)
		if err != nil {
			return nil, err
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("engine %q is listed twice; give each a distinct NAME (NAME=URL)", e.Name)
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("no engine given (examples: vllm, friendli, mine=http://127.0.0.1:8000/v1/chat/completions)")
	}
	return out, nil
}

func profileOf(name string) Profile {
	switch {
	case name == "vllm" || strings.HasPrefix(name, "vllm-"):
		return VLLM
	case name == "friendli" || strings.HasPrefix(name, "friendli-"):
		return Friendli
	default:
		return OpenAI
	}
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty engine name (write NAME=URL)")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("engine name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// redactSpec redacts the URL part of a spec for error messages.
func redactSpec(spec string) string {
	left, u, ok := strings.Cut(spec, "=")
	if !ok {
		return spec
	}
	return left + "=" + RedactURL(u)
}

// normalizeURL validates a chat URL and completes a base URL.
func normalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty URL (write NAME=http://host:port/v1/chat/completions)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("URL %q: %s", RedactURL(raw), Redact(err.Error(), urlPassword(raw)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %q: scheme must be http or https, e.g. http://localhost:8000/v1/chat/completions", RedactURL(raw))
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("URL %q: no host, e.g. http://localhost:8000/v1/chat/completions", RedactURL(raw))
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case p == "":
		u.Path = "/v1" + chatCompletionsPath
	case strings.HasSuffix(p, "/v1"):
		u.Path = p + chatCompletionsPath
	}
	u.RawPath = ""
	return u.String(), nil
}

// modelsURL is the GET /models URL next to a chat URL.
func modelsURL(chat string) (string, error) {
	u, err := url.Parse(chat)
	if err != nil {
		return "", err
	}
	if base, ok := strings.CutSuffix(u.Path, chatCompletionsPath); ok {
		u.Path = base + "/models"
	} else {
		u.Path = "/v1/models"
	}
	u.RawPath, u.RawQuery = "", ""
	return u.String(), nil
}

func urlPassword(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return ""
	}
	start := strings.Index(raw, "://")
	if start < 0 || start > at {
		start = -3
	}
	userinfo := raw[start+3 : at]
	if _, p, ok := strings.Cut(userinfo, ":"); ok {
		return p
	}
	return userinfo
}
