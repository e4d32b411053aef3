// Command fromevents makes a transcript (package transcript) from an
// engine's stream recorded in its own repository as a JSON array of the
// events' objects (a test snapshot), for engines that cannot run here.
// Such a recording keeps the events and nothing of the exchange around
// them, so the transcript says what it reconstructed (Meta.Framing): each
// object is sent as one event, "data: " and its JSON (keys as the
// recording has them) and a blank line, one event per read 1 ms apart,
// behind an HTTP/1.1 200 head with Content-Type text/event-stream and
// chunked framing; -done appends "data: [DONE]" when the engine's source
// sends it (cite the line with -done-source).
//
//	git show COMMIT:PATH > snapshot.json
//	go run ./internal/transcript/cmd/fromevents -in snapshot.json -engine tgi -version 3.1.2-dev0 \
//	    -repository huggingface/text-generation-inference -path PATH -commit COMMIT \
//	    -done -done-source 'router/src/server.rs:1244 at db931fc' -o testdata/streams/tgi/NAME
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/transcript"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fromevents:", err)
		os.Exit(1)
	}
}

type notes []string

func (n *notes) String() string     { return strings.Join(*n, "; ") }
func (n *notes) Set(v string) error { *n = append(*n, v); return nil }

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fromevents", flag.ContinueOnError)
	in := fs.String("in", "", "the recording: a JSON array of the stream's event objects (required)")
	out := fs.String("o", "", "the transcript's path without extension (required)")
	engine := fs.String("engine", "", "the engine's name (required)")
	version := fs.String("version", "", "the engine's version the recording shows")
	model := fs.String("model", "", "the model of the recording")
	date := fs.String("date", "", "when the recording was made (RFC 3339; default: the first event's created time)")
	repo := fs.String("repository", "", "the repository holding the recording (required)")
	path := fs.String("path", "", "its path there (required)")
	commit := fs.String("commit", "", "the commit that holds it (required)")
	done := fs.Bool("done", false, "end the stream with data: [DONE], as the engine's source does")
	doneSource := fs.String("done-source", "", "where the engine's source sends [DONE] (with -done)")
	request := fs.String("request", "", "what the recording's test asked for, in words")
	var ns notes
	fs.Var(&ns, "note", "a note for the metadata (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" || *engine == "" || *repo == "" || *path == "" || *commit == "" {
		return errors.New("-in, -o, -engine, -repository, -path and -commit are required")
	}
	if *done && *doneSource == "" {
		return errors.New("-done needs -done-source: where the engine's source sends [DONE]")
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		return fmt.Errorf("%s: want a JSON array of event objects: %w", *in, err)
	}
	if len(events) == 0 {
		return fmt.Errorf("%s: no events", *in)
	}
	t := &transcript.Transcript{End: transcript.Open}
	at := time.Millisecond
	add := func(b []byte) {
		t.Reads = append(t.Reads, transcript.Read{At: at, Data: b})
		at += time.Millisecond
	}
	add([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"))
	var created int64
	for i, ev := range events {
		var compact bytes.Buffer
		if err := json.Compact(&compact, ev); err != nil {
			return fmt.Errorf("%s: event %d: %w", *in, i, err)
		}
		if created == 0 {
			var c struct {
				Created int64 `json:"created"`
			}
			_ = json.Unmarshal(ev, &c)
			created = c.Created
		}
		add(chunk("data: " + compact.String() + "\n\n"))
	}
	if *done {
		add(chunk("data: [DONE]\n\n"))
	}
	add([]byte("0\r\n\r\n"))
	t.EndAt = at
	if *date == "" && created > 0 {
		*date = time.Unix(created, 0).UTC().Format(time.RFC3339)
	}
	framing := "reconstructed: the events are the recording's objects, in its order and with its keys, each sent as one data: event (one per read, 1 ms apart) behind an HTTP/1.1 200 head with Content-Type text/event-stream and chunked framing; the recording has no request bytes, head, read boundaries, timing or connection end (kept open here)"
	if *done {
		framing += "; data: [DONE] follows the events, as the engine's source sends it (" + *doneSource + ")"
	} else {
		framing += "; no data: [DONE] follows"
	}
	cmdline := fmt.Sprintf("git show %s > %s && %s", transcript.CommandLine(*commit+":"+*path), transcript.CommandLine(*in),
		transcript.CommandLine(append([]string{"go", "run", "./internal/transcript/cmd/fromevents"}, args...)...))
	t.Meta = transcript.Meta{
		Engine: *engine, Version: *version, Model: *model, Date: *date,
		Command: cmdline,
		Source:  transcript.Source{Kind: "repository", Repository: *repo, Path: *path, Commit: *commit},
		Framing: framing,
		Notes:   append([]string{"the request: " + *request}, ns...),
	}
	if err := t.WriteFiles(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s%s: %d events\n", *out, transcript.ExchangeExt, len(events))
	return nil
}

// chunk frames s as one chunk of a chunked body.
func chunk(s string) []byte { return []byte(fmt.Sprintf("%x\r\n%s\r\n", len(s), s)) }
