package transcript

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// End says how the connection ended.
type End string

const (
	// EOF: the server closed the connection (a read returned end of file).
	EOF End = "eof"
	// Reset: the server reset the connection (ECONNRESET).
	Reset End = "reset"
	// Open: the connection was still open when the capture stopped
	// watching it (a kept-alive connection).
	Open End = "open"
)

// Read is one read of the response: the bytes it returned and when they
// arrived, as an offset from the request's write.
type Read struct {
	At   time.Duration
	Data []byte
}

// Transcript is one exchange.
type Transcript struct {
	// Name is the file's name without its extension.
	Name string
	// Meta is its metadata.
	Meta Meta
	// Request is the request as written, head and body.
	Request []byte
	// Reads are the response's reads in order.
	Reads []Read
	// End is how the connection ended, and EndAt when.
	End   End
	EndAt time.Duration
}

// Response is every byte of the response, the reads joined.
func (t *Transcript) Response() []byte {
	var b []byte
	for _, r := range t.Reads {
		b = append(b, r.Data...)
	}
	return b
}

// Meta is a transcript's metadata.
type Meta struct {
	// Engine is the engine's name (ollama, llama-server, tgi, …) and
	// Version its version as the engine reports it (or the source's).
	Engine  string `json:"engine"`
	Version string `json:"version"`
	// Model is the model the engine served.
	Model string `json:"model"`
	// Date is when the exchange happened (RFC 3339), or when the source
	// recorded it.
	Date string `json:"date"`
	// Command is the command line that made the transcript (the capture
	// tool's, secrets redacted); ServerCommand how the engine was started,
	// where it ran here.
	Command       string `json:"command"`
	ServerCommand string `json:"server_command,omitempty"`
	// Source is where the exchange came from.
	Source Source `json:"source"`
	// Framing says what of the exchange is as the engine sent it:
	// "recorded" (the request, the reads' bytes, boundaries and times, and
	// the end, all as they happened), or a sentence naming what was
	// reconstructed and how.
	Framing string `json:"framing"`
	// Notes are what the transcript shows that a reader should know (the
	// engine's quirks it exhibits).
	Notes []string `json:"notes,omitempty"`
}

// Source is where an exchange came from.
type Source struct {
	// Kind is "captured" (live, from an engine that ran here) or
	// "repository" (recorded in the engine's own repository).
	Kind string `json:"kind"`
	// Repository, Path and Commit cite a repository's recording.
	Repository string `json:"repository,omitempty"`
	Path       string `json:"path,omitempty"`
	Commit     string `json:"commit,omitempty"`
}

// line is one line of the exchange file.
type line struct {
	Request    *string `json:"request,omitempty"`
	RequestB64 *string `json:"request_b64,omitempty"`
	At         *int64  `json:"at_ns,omitempty"`
	Data       *string `json:"data,omitempty"`
	DataB64    *string `json:"data_b64,omitempty"`
	End        *string `json:"end,omitempty"`
}

// SyntaxError is a malformed exchange file: its line and what was wrong.
type SyntaxError struct {
	Line int
	Err  error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *SyntaxError) Unwrap() error { return e.Err }

// MaxLine bounds one line of an exchange file (a read of at most a few
// hundred KiB, base64 included).
const MaxLine = 4 << 20

// Parse reads an exchange file: the request line, the reads, the end. An
// error names the line.
func Parse(r io.Reader) (*Transcript, error) {
	t := &Transcript{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	n := 0
	sawRequest, sawEnd := false, false
	var last time.Duration
	bad := func(format string, a ...any) error { return &SyntaxError{n, fmt.Errorf(format, a...)} }
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if sawEnd {
			return nil, bad("a line after the end")
		}
		var l line
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, bad("%v", err)
		}
		if dec.More() {
			return nil, bad("more than one JSON value")
		}
		switch {
		case l.Request != nil || l.RequestB64 != nil:
			if sawRequest || len(t.Reads) > 0 {
				return nil, bad("the request must be the first line, once")
			}
			if l.At != nil || l.Data != nil || l.DataB64 != nil || l.End != nil {
				return nil, bad("a request line has only request or request_b64")
			}
			b, err := bytesOf(l.Request, l.RequestB64)
			if err != nil {
				return nil, bad("request: %v", err)
			}
			t.Request, sawRequest = b, true
		case l.End != nil:
			if l.Data != nil || l.DataB64 != nil {
				return nil, bad("an end line has only end and at_ns")
			}
			switch End(*l.End) {
			case EOF, Reset, Open:
			default:
				return nil, bad("end %q: want eof, reset or open", *l.End)
			}
			if l.At == nil {
				return nil, bad("the end needs at_ns")
			}
			t.End, t.EndAt, sawEnd = End(*l.End), time.Duration(*l.At), true
			if t.EndAt < last {
				return nil, bad("the end at %v is before the last read at %v", t.EndAt, last)
			}
		default:
			if l.At == nil {
				return nil, bad("a read needs at_ns")
			}
			b, err := bytesOf(l.Data, l.DataB64)
			if err != nil {
				return nil, bad("read: %v", err)
			}
			if len(b) == 0 {
				return nil, bad("a read of no bytes")
			}
			at := time.Duration(*l.At)
			if at < 0 || at < last {
				return nil, bad("at_ns %d goes backwards (the read before arrived at %d)", *l.At, int64(last))
			}
			last = at
			t.Reads = append(t.Reads, Read{At: at, Data: b})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &SyntaxError{n + 1, err}
	}
	switch {
	case !sawRequest:
		return nil, &SyntaxError{n, errors.New("no request line")}
	case !sawEnd:
		return nil, &SyntaxError{n, errors.New("no end line: the file is cut")}
	}
	return t, nil
}

// bytesOf decodes one of a text and a base64 field.
func bytesOf(text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, errors.New("both text and base64")
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		return base64.StdEncoding.DecodeString(*b64)
	}
	return nil, errors.New("no bytes")
}

// Write writes t's exchange file.
func (t *Transcript) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	text, b64 := split(t.Request)
	if err := enc.Encode(line{Request: text, RequestB64: b64}); err != nil {
		return err
	}
	for _, r := range t.Reads {
		at := int64(r.At)
		text, b64 := split(r.Data)
		if err := enc.Encode(line{At: &at, Data: text, DataB64: b64}); err != nil {
			return err
		}
	}
	end, at := string(t.End), int64(t.EndAt)
	if err := enc.Encode(line{End: &end, At: &at}); err != nil {
		return err
	}
	return bw.Flush()
}

// split is b as text when it is valid UTF-8, else as base64.
func split(b []byte) (text, b64 *string) {
	s := string(b)
	if utf8.ValidString(s) {
		return &s, nil
	}
	e := base64.StdEncoding.EncodeToString(b)
	return nil, &e
}

// Exts of a transcript's two files.
const (
	ExchangeExt = ".jsonl"
	MetaExt     = ".meta.json"
)

// ReadFile reads the transcript at path (its .jsonl file) and its
// metadata beside it.
func ReadFile(path string) (*Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Name = strings.TrimSuffix(filepath.Base(path), ExchangeExt)
	metaPath := strings.TrimSuffix(path, ExchangeExt) + MetaExt
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, fmt.Errorf("%s: its metadata: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t.Meta); err != nil {
		return nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	if t.Meta.Engine == "" || t.Meta.Source.Kind == "" || t.Meta.Framing == "" {
		return nil, fmt.Errorf("%s: engine, source.kind and framing are required", metaPath)
	}
	return t, nil
}

// WriteFiles writes t as prefix.jsonl and prefix.meta.json.
func (t *Transcript) WriteFiles(prefix string) error {
	var b bytes.Buffer
	if err := t.Write(&b); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+ExchangeExt, b.Bytes(), 0o644); err != nil {
		return err
	}
	m, err := json.MarshalIndent(t.Meta, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(prefix+MetaExt, append(m, '\n'), 0o644)
}

// Load reads every transcript under dir (its *.jsonl files, in every
// subfolder), sorted by path.
func Load(dir string) ([]*Transcript, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ExchangeExt) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*Transcript
	for _, p := range paths {
		t, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(dir, strings.TrimSuffix(p, ExchangeExt))
		t.Name = filepath.ToSlash(rel)
		out = append(out, t)
	}
	return out, nil
}

// CommandLine joins args into a line a POSIX shell splits back into them
// (for Meta.Command).
func CommandLine(args ...string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'$\\();&|<>*?`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
