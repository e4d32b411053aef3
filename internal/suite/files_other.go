//go:build !unix

package suite

import "errors"

func fileLimit() (soft, hard uint64, err error) { return 0, 0, errors.New("no RLIMIT_NOFILE") }
func raiseFileLimit(uint64) error               { return errors.New("no RLIMIT_NOFILE") }
