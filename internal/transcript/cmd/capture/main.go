// Command capture records one streaming chat-completion exchange with any
// engine as a transcript (package transcript): it writes the request on a
// connection of its own, then records every read of the response with its
// bytes and arrival time, and how the connection ended, byte for byte and
// unparsed. Attach the two files it writes to a bug report, or add them to
// testdata/streams, and the client's tests replay them.
//
//	go run ./internal/transcript/cmd/capture -url http://127.0.0.1:8080/v1/chat/completions \
//	    -model tiny -max-tokens 16 -engine llama-server -version b12074 -o testdata/streams/llama-server/length
//
// The request is the one inferbench sends for the profile (-profile openai,
// vllm or friendli): stream, stream_options.include_usage, temperature 0,
// max_tokens and the profile's length fields, with -prompt as the user
// message; -body sends a JSON body of your own instead. Credentials go in
// -header "Authorization: Bearer …" (or come from -api-key-env); the
// transcript keeps the header's name with its value redacted. After the
// response, capture watches the connection for -idle: a server that closes
// it then (llama-server) gives an "eof" end, one that keeps it an "open"
// one.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/inferbench/inferbench/internal/transcript"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "capture:", err)
		os.Exit(1)
	}
}

// headers is a repeatable -header flag.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func run(args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	rawURL := fs.String("url", "", "the engine's chat-completions URL (http or https; required)")
	model := fs.String("model", "", "the model field of the request")
	prompt := fs.String("prompt", "Say something about the sea.", "the user message")
	maxTokens := fs.Int("max-tokens", 16, "max_tokens (0: none)")
	profile := fs.String("profile", "openai", "request shape: openai (max_tokens), vllm (+ min_tokens, ignore_eos, continuous_usage_stats) or friendli (+ min_tokens)")
	body := fs.String("body", "", "a JSON request body to send instead of the profile's")
	var hdrs headers
	fs.Var(&hdrs, "header", `a request header "Name: value" (repeatable); its value is redacted in the transcript`)
	keyEnv := fs.String("api-key-env", "", "send the value of this environment variable as a Bearer token (redacted)")
	idle := fs.Duration("idle", 2*time.Second, "how long to watch the connection after the response's last byte for the server closing it")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up on the exchange after this long")
	out := fs.String("o", "", "the transcript's path without extension: writes OUT.jsonl and OUT.meta.json (required)")
	engine := fs.String("engine", "", "the engine's name for the metadata (required)")
	version := fs.String("version", "", "the engine's version for the metadata")
	serverCmd := fs.String("server-command", "", "how the engine was started, for the metadata")
	var notes headers
	fs.Var(&notes, "note", "a note for the metadata (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *rawURL == "" || *out == "" || *engine == "":
		return errors.New("-url, -engine and -o are required")
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http://host:port/path or https://…", *rawURL)
	}
	payload := []byte(*body)
	if *body == "" {
		if payload, err = requestBody(*profile, *model, *prompt, *maxTokens); err != nil {
			return err
		}
	} else if !json.Valid(payload) {
		return errors.New("-body is not valid JSON")
	}
	var secrets []string
	var extra []string
	for _, h := range hdrs {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-header %q: want \"Name: value\"", h)
		}
		extra = append(extra, strings.TrimSpace(name)+": "+strings.TrimSpace(value))
		secrets = append(secrets, strings.TrimSpace(value))
	}
	if *keyEnv != "" {
		key := getenv(*keyEnv)
		if key == "" {
			return fmt.Errorf("-api-key-env %s: the variable is empty", *keyEnv)
		}
		extra = append(extra, "Authorization: Bearer "+key)
		secrets = append(secrets, key)
	}

	t, err := capture(u, payload, extra, *idle, *timeout)
	if err != nil {
		return err
	}
	t.Request = redact(t.Request, secrets)
	t.Meta = transcript.Meta{
		Engine: *engine, Version: *version, Model: *model,
		Date:          time.Now().UTC().Format(time.RFC3339),
		Command:       string(redact([]byte(transcript.CommandLine(append([]string{"go", "run", "./internal/transcript/cmd/capture"}, args...)...)), secrets)),
		ServerCommand: *serverCmd,
		Source:        transcript.Source{Kind: "captured"},
		Framing:       "recorded",
		Notes:         notes,
	}
	if err := t.WriteFiles(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s%s and %s%s: %d reads, %d bytes, end %s after %v\n",
		*out, transcript.ExchangeExt, *out, transcript.MetaExt, len(t.Reads), len(t.Response()), t.End, t.EndAt.Round(time.Millisecond))
	return nil
}

// requestBody is the request inferbench's client sends for the profile
// (engines package doc, "Request profiles").
func requestBody(profile, model, prompt string, maxTokens int) ([]byte, error) {
	b := map[string]any{
		"messages":       []map[string]string{{"role": "user", "content": prompt}},
		"stream":         true,
		"temperature":    0,
		"stream_options": map[string]any{"include_usage": true},
	}
	if model != "" {
		b["model"] = model
	}
	if maxTokens > 0 {
		b["max_tokens"] = maxTokens
	}
	switch profile {
	case "openai":
	case "vllm":
		if maxTokens > 0 {
			b["min_tokens"], b["ignore_eos"] = maxTokens, true
		}
		b["stream_options"] = map[string]any{"include_usage": true, "continuous_usage_stats": true}
	case "friendli":
		if maxTokens > 0 {
			b["min_tokens"] = maxTokens
		}
	default:
		return nil, fmt.Errorf("-profile %q: want openai, vllm or friendli", profile)
	}
	return json.Marshal(b)
}

// capture does the exchange on a connection of its own.
func capture(u *url.URL, payload []byte, extra []string, idle, timeout time.Duration) (*transcript.Transcript, error) {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if u.Scheme == "https" {
		conn, err = tls.DialWithDialer(&d, "tcp", host, &tls.Config{ServerName: u.Hostname()})
	} else {
		conn, err = d.Dial("tcp", host)
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	path := u.RequestURI()
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n", path, u.Host)
	for _, h := range extra {
		req.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(payload))
	req.Write(payload)

	t := &transcript.Transcript{Request: req.Bytes()}
	start := time.Now()
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	buf := make([]byte, 256<<10)
	var lastByte time.Time
	for {
		// Until the first byte and while the response flows, the deadline
		// is the exchange's; once bytes stop for -idle after the last one,
		// the connection is open and watching stops.
		wait := deadline
		if !lastByte.IsZero() && lastByte.Add(idle).Before(wait) {
			wait = lastByte.Add(idle)
		}
		_ = conn.SetReadDeadline(wait)
		n, err := conn.Read(buf)
		now := time.Now()
		if n > 0 {
			t.Reads = append(t.Reads, transcript.Read{At: now.Sub(start), Data: append([]byte(nil), buf[:n]...)})
			lastByte = now
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			t.End, t.EndAt = transcript.EOF, now.Sub(start)
		case errors.Is(err, syscall.ECONNRESET):
			t.End, t.EndAt = transcript.Reset, now.Sub(start)
		case errors.Is(err, os.ErrDeadlineExceeded) && !lastByte.IsZero() && now.Before(deadline):
			t.End, t.EndAt = transcript.Open, now.Sub(start)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("no complete exchange within -timeout %v (%d reads so far)", timeout, len(t.Reads))
		default:
			return nil, err
		}
		return t, nil
	}
}

// redact replaces every secret in b.
func redact(b []byte, secrets []string) []byte {
	for _, s := range secrets {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte("[redacted]"))
		}
	}
	return b
}
