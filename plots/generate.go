package plots

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Generate reads the benchmark files (see Load), draws the charts the input
// supports (see Render) and writes them into outDir, creating it if needed.
// It returns the paths written.
//
// Everything is rendered in memory before anything is written, and each file
// is written to a temporary file and renamed into place, so a failure leaves
// no partial or half-written PNG. When only some charts could be drawn,
// Generate writes those and returns their paths together with a non-nil
// error that joins *SkipError warnings; when the input is bad or Render
// fails (closed-loop results without tok/s, or no chart at all), it writes
// nothing and returns only the error.
func Generate(paths []string, outDir string) ([]string, error) {
	d, err := Load(paths)
	if err != nil {
		return nil, err
	}
	images, warnings, err := Render(d)
	if err != nil {
		return nil, err
	}
	written, err := WriteImages(images, outDir)
	if err != nil {
		return nil, err
	}
	return written, errors.Join(warnings...)
}

// WriteImages writes images into dir atomically: all are first written to
// temporary files in dir, then renamed into place. If writing any temporary
// file fails, all are removed and no image is replaced; a rename failing
// after that (rare: same directory) leaves the earlier renames in place and
// returns them with the error.
func WriteImages(images []Image, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots: output directory: %w", err)
	}
	var temps []string
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, im := range images {
		tmp, err := os.CreateTemp(dir, "."+im.Name+".*.tmp")
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("plots: %s: %w", im.Name, err)
		}
		temps = append(temps, tmp.Name())
		_, werr := tmp.Write(im.PNG)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			cleanup()
			return nil, fmt.Errorf("plots: writing %s: %w", im.Name, err)
		}
		// CreateTemp makes the file 0600; charts are for sharing.
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			cleanup()
			return nil, fmt.Errorf("plots: %s: %w", im.Name, err)
		}
	}
	written := make([]string, 0, len(images))
	for i, im := range images {
		dst := filepath.Join(dir, im.Name)
		if err := os.Rename(temps[i], dst); err != nil {
			cleanup()
			return written, fmt.Errorf("plots: %s: %w", dst, err)
		}
		written = append(written, dst)
	}
	return written, nil
}
