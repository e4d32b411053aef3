package fake

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoSharedProtocolCode pins the rule that the simulated engine (the
// oracle) shares no protocol code with the client it checks: no non-test
// file of fake or its command imports engines/ or internal packages, but
// internal/transcript, which the replay server (replay.go) plays: it
// carries recorded bytes and their times, and knows no SSE, JSON or HTTP
// framing (its own package doc says so, and its imports show it).
func TestNoSharedProtocolCode(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	cmd, err := filepath.Glob("cmd/*/*.go")
	require.NoError(t, err)
	for _, f := range append(files, cmd...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			assert.False(t, strings.HasPrefix(path, "github.com/inferbench/inferbench/engines"), "%s imports %s", f, path)
			if path == "github.com/inferbench/inferbench/internal/transcript" {
				continue
			}
			assert.False(t, strings.HasPrefix(path, "github.com/inferbench/inferbench/internal"), "%s imports %s", f, path)
		}
	}
}

// TestTranscriptKnowsNoProtocol: internal/transcript, the one internal
// package fake may import, imports no package of the project's and
// nothing that parses a protocol (no net/http, no engines).
func TestTranscriptKnowsNoProtocol(t *testing.T) {
	files, err := filepath.Glob("../internal/transcript/*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			assert.False(t, strings.HasPrefix(path, "github.com/inferbench/inferbench"), "%s imports %s", f, path)
			assert.NotContains(t, []string{"net/http", "net/textproto", "mime"}, path, "%s imports %s", f, path)
		}
	}
}
