package transcript

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip: a transcript written and read back is the same, bytes
// that are not UTF-8 (a read that splits a character) included.
func TestRoundTrip(t *testing.T) {
	tr := &Transcript{
		Request: []byte("POST / HTTP/1.1\r\n\r\n{}"),
		Reads: []Read{
			{At: time.Millisecond, Data: []byte("HTTP/1.1 200 OK\r\n\r\n")},
			{At: 2 * time.Millisecond, Data: []byte("data: \xe2\x82")},
			{At: 2 * time.Millisecond, Data: []byte("\xac\n\n")},
		},
		End: EOF, EndAt: 3 * time.Millisecond,
		Meta: Meta{Engine: "e", Source: Source{Kind: "captured"}, Framing: "recorded"},
	}
	prefix := filepath.Join(t.TempDir(), "x")
	require.NoError(t, tr.WriteFiles(prefix))
	b, err := os.ReadFile(prefix + ExchangeExt)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"data_b64"`, "the split character goes as base64")
	got, err := ReadFile(prefix + ExchangeExt)
	require.NoError(t, err)
	tr.Name = "x"
	assert.Equal(t, tr, got)
	assert.Equal(t, "HTTP/1.1 200 OK\r\n\r\ndata: €\n\n", string(got.Response()))
}

// TestParseRejects: every malformed exchange file fails with its line and
// what was wrong, never a transcript that is not what the file says.
func TestParseRejects(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"empty", "", "no request line"},
		{"no end: a cut file", `{"request":"x"}` + "\n" + `{"at_ns":1,"data":"y"}`, "line 2: no end line: the file is cut"},
		{"a read before the request", `{"at_ns":1,"data":"y"}` + "\n" + `{"request":"x"}`, "line 2: the request must be the first line"},
		{"time goes backwards", `{"request":"x"}` + "\n" + `{"at_ns":5,"data":"y"}` + "\n" + `{"at_ns":4,"data":"z"}`, "line 3: at_ns 4 goes backwards"},
		{"an unknown end", `{"request":"x"}` + "\n" + `{"end":"shrug","at_ns":1}`, `line 2: end "shrug"`},
		{"an unknown field", `{"request":"x","extra":1}`, "line 1: json: unknown field"},
		{"both text and base64", `{"request":"x"}` + "\n" + `{"at_ns":1,"data":"y","data_b64":"eQ=="}`, "line 2: read: both text and base64"},
		{"bad base64", `{"request":"x"}` + "\n" + `{"at_ns":1,"data_b64":"!!"}`, "line 2: read: illegal base64"},
		{"an empty read", `{"request":"x"}` + "\n" + `{"at_ns":1,"data":""}`, "line 2: a read of no bytes"},
		{"a line after the end", `{"request":"x"}` + "\n" + `{"end":"eof","at_ns":1}` + "\n" + `{"at_ns":2,"data":"y"}`, "line 3: a line after the end"},
		{"two values on a line", `{"request":"x"} {"request":"y"}`, "line 1: more than one JSON value"},
		{"the end before the last read", `{"request":"x"}` + "\n" + `{"at_ns":5,"data":"y"}` + "\n" + `{"end":"eof","at_ns":4}`, "line 3: the end at"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestCommandLine: the line splits back into the arguments in a POSIX
// shell's quoting.
func TestCommandLine(t *testing.T) {
	assert.Equal(t, `go run ./x -prompt 'it'\''s $HOME' -o a ''`, CommandLine("go", "run", "./x", "-prompt", "it's $HOME", "-o", "a", ""))
}

// FuzzParse: Parse never panics, and what it accepts writes back to a
// file it reads as the same transcript.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"request":"POST"}` + "\n" + `{"at_ns":1,"data":"HTTP/1.1 200 OK\r\n\r\n"}` + "\n" + `{"end":"open","at_ns":2}`))
	f.Add([]byte(`{"request_b64":"AA=="}` + "\n" + `{"at_ns":0,"data_b64":"/w=="}` + "\n" + `{"end":"reset","at_ns":0}`))
	if trs, err := Load(filepath.Join("..", "..", "testdata", "streams")); err == nil {
		for _, tr := range trs {
			var b bytes.Buffer
			if tr.Write(&b) == nil {
				f.Add(b.Bytes())
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := Parse(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		require.NoError(t, tr.Write(&b))
		again, err := Parse(&b)
		require.NoError(t, err, "%s", b.String())
		assert.Equal(t, tr, again)
	})
}
