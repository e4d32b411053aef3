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
// file of fake or its command imports engines/ or internal packages.
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
			assert.False(t, strings.HasPrefix(path, "github.com/inferbench/inferbench/internal"), "%s imports %s", f, path)
		}
	}
}
