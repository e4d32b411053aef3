package suite

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// benchParent is the benchmark whose sub-benchmarks the suite names.
const benchParent = "BenchmarkServe"

// selectEngines keeps the engines with at least one sub-benchmark that the
// -bench pattern selects, matched the way the testing package matches it
// (the pattern split at unbracketed slashes, element i against name element
// i), so only those engines are preflighted and have their result files
// rewritten.
func (s *Suite) selectEngines(list []*Engine) ([]*Engine, error) {
	if s.opt.Bench == "" {
		return list, nil
	}
	m, err := newBenchMatcher(s.opt.Bench)
	if err != nil {
		return nil, fmt.Errorf("-bench=%s: %w", s.opt.Bench, err)
	}
	var out []*Engine
	for _, e := range list {
		for _, name := range s.benchNames(e) {
			if m.match(name) {
				out = append(out, e)
				break
			}
		}
	}
	if len(out) == 0 && s.slo.IsZero() && m.match(capacityParent) {
		return nil, fmt.Errorf("-bench=%s: %w", s.opt.Bench, ErrNoSLO)
	}
	if len(out) == 0 {
		names := make([]string, len(list))
		for i, e := range list {
			names[i] = s.benchNames(e)[0]
		}
		msg := fmt.Sprintf("-bench=%s selects no engine of -engines: the sub-benchmarks are named like %s", s.opt.Bench, strings.Join(names, ", "))
		if s.auto != nil {
			msg += " (with -concurrency=auto the levels are placed only after the probe: select engines, e.g. -bench=Serve/engine=NAME, not levels)"
		}
		return nil, errors.New(msg)
	}
	return out, nil
}

// benchNames are the full names of engine e's leaf benchmarks: its
// BenchmarkServe levels (concurrency=N, then rate=R) and, with -slo, its
// BenchmarkCapacity.
func (s *Suite) benchNames(e *Engine) []string {
	var names []string
	for _, c := range s.levels {
		names = append(names, benchParent+"/"+subName(s.multi, e.name, c))
	}
	if s.auto != nil && s.levels == nil {
		// The levels are placed after the preflight; select by engine.
		names = append(names, benchParent+"/"+levelName(s.multi, e.name, autoLevel))
	}
	for _, r := range s.rates {
		names = append(names, benchParent+"/"+s.RateName(e, r))
	}
	if s.HasTrace() {
		names = append(names, benchParent+"/"+s.TraceName(e))
	}
	if !s.slo.IsZero() {
		name := capacityParent
		if sub := s.CapacityName(e); sub != "" {
			name += "/" + sub
		}
		names = append(names, name)
	}
	return names
}

// benchMatcher is testing's -bench matching: alternatives (top-level '|'),
// each one regexp per element of a slash-separated name.
type benchMatcher [][]*regexp.Regexp

func newBenchMatcher(pattern string) (benchMatcher, error) {
	var m benchMatcher
	for _, alt := range splitRegexp(pattern) {
		var path []*regexp.Regexp
		for _, el := range alt {
			re, err := regexp.Compile(el)
			if err != nil {
				return nil, err
			}
			path = append(path, re)
		}
		m = append(m, path)
	}
	return m, nil
}

// match reports whether the full name of a leaf benchmark (elements
// separated by '/') is selected: for some alternative, each element that
// the alternative has a regexp for matches it.
func (m benchMatcher) match(name string) bool {
	els := strings.Split(name, "/")
	for _, path := range m {
		ok := true
		for i, re := range path {
			if i < len(els) && !re.MatchString(els[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// splitRegexp splits a -bench pattern as the testing package does
// (testing/match.go): at '|' and '/' outside brackets and parentheses,
// '|' separating alternatives of whole paths and '/' the elements of one.
func splitRegexp(s string) [][]string {
	var alts [][]string
	var path []string
	cs, cp := 0, 0 // depth of [] and ()
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			cs++
		case ']':
			if cs--; cs < 0 {
				cs = 0
			}
		case '(':
			if cs == 0 {
				cp++
			}
		case ')':
			if cs == 0 {
				cp--
			}
		case '\\':
			i++
		case '/', '|':
			if cs == 0 && cp == 0 {
				path = append(path, s[start:i])
				start = i + 1
				if s[i] == '|' {
					alts = append(alts, path)
					path = nil
				}
			}
		}
	}
	return append(alts, append(path, s[start:]))
}
