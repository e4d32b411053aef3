// Package faketest starts inferbench's simulated engine for tests of other
// packages: in-process (Start) or as the standalone fake-engine command on
// a loopback port (StartStandalone). Both stop when the test ends.
//
// Input: a preset or a command line. Output: a running engine's URL, closed
// by t.Cleanup. It is for tests only and must not be imported by non-test
// code.
package faketest
