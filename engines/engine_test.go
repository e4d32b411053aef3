package engines

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// env returns a getenv over a fixed map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	noEnv := env(nil)
	withKeys := env(map[string]string{EnvFriendliToken: "flp_secret123", EnvFriendliTeam: "team-9", EnvOpenAIKey: "sk-open"})
	tests := []struct {
		name   string
		spec   string
		getenv func(string) string
		want   Engine
	}{
		// The vllm shorthand: local default URL, VLLM profile, no key.
		{"vllm", "vllm", noEnv, Engine{Name: "vllm", Profile: VLLM, URL: DefaultVLLMURL}},
		// The friendli shorthand: the container's default URL and Friendli credentials.
		{"friendli", "friendli", withKeys, Engine{Name: "friendli", Profile: Friendli, URL: DefaultFriendliURL, APIKey: "flp_secret123", Team: "team-9"}},
		// Serverless shorthand with a model.
		{"serverless@model", "friendli-serverless@meta-llama-3.1-8b-instruct", withKeys,
			Engine{Name: "friendli-serverless", Profile: Friendli, URL: FriendliServerless, Model: "meta-llama-3.1-8b-instruct", APIKey: "flp_secret123", Team: "team-9"}},
		// Dedicated shorthand with an ENDPOINT:ADAPTER model.
		{"dedicated", "friendli-dedicated@ep123:lora", withKeys,
			Engine{Name: "friendli-dedicated", Profile: Friendli, URL: FriendliDedicated, Model: "ep123:lora", APIKey: "flp_secret123", Team: "team-9"}},
		// NAME=URL with a generic name takes OPENAI_API_KEY.
		{"generic", "my-sglang=http://10.0.0.5:30000/v1/chat/completions", withKeys,
			Engine{Name: "my-sglang", Profile: OpenAI, URL: "http://10.0.0.5:30000/v1/chat/completions", APIKey: "sk-open"}},
		// A vllm- prefix selects the VLLM profile.
		{"vllm prefix", "vllm-tp2=http://h:8000/v1/chat/completions", noEnv, Engine{Name: "vllm-tp2", Profile: VLLM, URL: "http://h:8000/v1/chat/completions"}},
		// A friendli- prefix selects the Friendli profile.
		{"friendli prefix", "friendli-a100=https://h/v1/chat/completions", noEnv, Engine{Name: "friendli-a100", Profile: Friendli, URL: "https://h/v1/chat/completions"}},
		// A bare host URL is completed to /v1/chat/completions.
		{"base url", "x=http://h:8000", noEnv, Engine{Name: "x", Profile: OpenAI, URL: "http://h:8000/v1/chat/completions"}},
		// A trailing slash too.
		{"base url slash", "x=http://h:8000/", noEnv, Engine{Name: "x", Profile: OpenAI, URL: "http://h:8000/v1/chat/completions"}},
		// A /v1 base gets /chat/completions.
		{"v1 base", "x=https://h/serverless/v1/", noEnv, Engine{Name: "x", Profile: OpenAI, URL: "https://h/serverless/v1/chat/completions"}},
		// Another path is kept as given.
		{"custom path", "x=http://h/proxy/chat", noEnv, Engine{Name: "x", Profile: OpenAI, URL: "http://h/proxy/chat"}},
		// NAME@MODEL=URL with a slash in the model.
		{"model with slash", "v@meta-llama/Llama-3.1-8B-Instruct=http://h:8000", noEnv,
			Engine{Name: "v", Profile: OpenAI, URL: "http://h:8000/v1/chat/completions", Model: "meta-llama/Llama-3.1-8B-Instruct"}},
		// Surrounding spaces are trimmed.
		{"spaces", "  vllm  ", noEnv, Engine{Name: "vllm", Profile: VLLM, URL: DefaultVLLMURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.spec, tt.getenv)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantSub string
	}{
		{"empty", "", "empty engine spec"},                                            // nothing given
		{"unknown shorthand", "sglang", "unknown engine"},                             // not a shorthand, no URL
		{"bare url", "http://h:8000/v1/chat/completions", "needs a name"},             // URL without NAME=
		{"bad scheme", "x=ftp://h/v1", "scheme must be http or https"},                // wrong scheme
		{"no scheme", "x=localhost:8000", "scheme must be http or https"},             // missing scheme
		{"no host", "x=http:///v1/chat/completions", "no host"},                       // missing host
		{"empty url", "x=", "empty URL"},                                              // nothing after =
		{"bad name", "my engine=http://h", "only letters"},                            // space in name
		{"empty model", "x@=http://h", "empty model"},                                 // @ without model
		{"serverless no token", "friendli-serverless@m", "set FRIENDLI_TOKEN"},        // token required
		{"dedicated no token", "friendli-dedicated", "set FRIENDLI_TOKEN"},            // token required
		{"bad url", "x=http://h:99999999/%zz", "URL"},                                 // unparsable
		{"empty name", "=http://h", "empty engine name"},                              // no name
		{"slash in name", "a/b=http://h", "only letters"},                             // would break benchmark names
		{"password url", "x=ftp://user:hunter2pw@h/", "scheme must be http or https"}, // credentials redacted (checked below)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.spec, env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantSub)
			assert.NotContains(t, err.Error(), "hunter2pw")
		})
	}
}

func TestParseList(t *testing.T) {
	got, err := ParseList("vllm, friendli ,mine=http://127.0.0.1:9/v1,", env(nil))
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []string{"vllm", "friendli", "mine"}, []string{got[0].Name, got[1].Name, got[2].Name})

	_, err = ParseList("vllm,vllm=http://h", env(nil))
	assert.ErrorContains(t, err, "listed twice")
	_, err = ParseList(" , ", env(nil))
	assert.ErrorContains(t, err, "no engine")
	_, err = ParseList("vllm,bogus", env(nil))
	assert.ErrorContains(t, err, "unknown engine")
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "http://h:8000/v1/chat/completions", "http://h:8000/v1/chat/completions"},          // nothing to hide
		{"userinfo", "https://bob:s3cret@h/v1", "https://redacted@h/v1"},                             // user:password@
		{"user only", "https://tok3n@h/v1", "https://redacted@h/v1"},                                 // a token as user name
		{"api_key", "http://h/v1?api_key=abc123&model=m", "http://h/v1?api_key=REDACTED&model=m"},    // secret query param
		{"token case", "http://h/v1?Access_Token=xyz9&x=1", "http://h/v1?Access_Token=REDACTED&x=1"}, // any case
		{"sig", "http://h/v1?sig=zzzz", "http://h/v1?sig=REDACTED"},                                  // signatures
		{"unparsable", "http://bob:pw@h:bad port/x?key=v", "http://redacted@h:bad port/x?REDACTED"},  // conservative fallback
		{"empty", "", ""}, // nothing
		{"key in name", "http://h/?apikey=1&keyfile=2&other=3", "http://h/?apikey=REDACTED&keyfile=REDACTED&other=3"}, // substring match
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, RedactURL(tt.in))
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		secrets []string
		want    string
	}{
		{"one", "token sk-abcdef rejected", []string{"sk-abcdef"}, "token [REDACTED] rejected"},       // replaced
		{"every occurrence", "a sk-xyzw b sk-xyzw", []string{"sk-xyzw"}, "a [REDACTED] b [REDACTED]"}, // all of them
		{"short ignored", "abc def", []string{"abc"}, "abc def"},                                      // < 4 bytes kept
		{"empty ignored", "text", []string{""}, "text"},                                               // no secret
		{"escaped", "url?key=a%2Bb%2Fc", []string{"a+b/c"}, "url?key=[REDACTED]"},                     // URL-escaped form
		{"several", "k1=AAAA k2=BBBB", []string{"AAAA", "BBBB"}, "k1=[REDACTED] k2=[REDACTED]"},       // many secrets
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Redact(tt.s, tt.secrets...))
		})
	}
}

// TestEngineNeverPrintsSecrets checks every formatting path of an Engine.
func TestEngineNeverPrintsSecrets(t *testing.T) {
	const key, team, pw = "MARKER-KEY-1234", "MARKER-TEAM-5678", "MARKER-PW-9999"
	e := Engine{Name: "x", Profile: Friendli, URL: "https://user:" + pw + "@h/v1/chat/completions?api_key=" + pw, APIKey: key, Team: team}
	type wrapper struct{ E Engine }
	outs := map[string]string{
		"String": e.String(),
		"%v":     fmt.Sprintf("%v", e),
		"%+v":    fmt.Sprintf("%+v", e),
		"%#v":    fmt.Sprintf("%#v", e),
		"%s":     fmt.Sprintf("%s", e),
		"%q":     fmt.Sprintf("%q", e),
		"ptr %v": fmt.Sprintf("%v", &e),
		"nested": fmt.Sprintf("%+v", wrapper{e}),
		"slice":  fmt.Sprintf("%#v", []Engine{e}),
	}
	b, err := json.Marshal(e)
	require.NoError(t, err)
	outs["json"] = string(b)
	c, err := NewClient(e, Options{})
	require.NoError(t, err)
	outs["client %+v"] = fmt.Sprintf("%+v", c)
	outs["client %#v"] = fmt.Sprintf("%#v", c)
	for name, s := range outs {
		for _, secret := range []string{key, team, pw} {
			assert.NotContains(t, s, secret, "%s leaks: %s", name, s)
		}
		assert.True(t, strings.Contains(s, "x") || name == "json", name)
	}
	assert.Contains(t, outs["%#v"], "[REDACTED]")
	assert.Contains(t, outs["json"], `"name":"x"`)
}

func TestModelsURL(t *testing.T) {
	tests := []struct{ chat, want string }{
		{"http://h:8000/v1/chat/completions", "http://h:8000/v1/models"},                                           // standard
		{"https://api.friendli.ai/serverless/v1/chat/completions", "https://api.friendli.ai/serverless/v1/models"}, // prefixed
		{"http://h/proxy/chat?x=1", "http://h/v1/models"},                                                          // unknown path: /v1/models
	}
	for _, tt := range tests {
		got, err := modelsURL(tt.chat)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}
