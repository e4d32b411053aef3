// Package kubernetes holds the manifests that run the compiled suite as an
// Indexed Job of shards and a merge Job (docs/scale-out.md), and the test
// that decodes them with the Kubernetes API types and checks their wiring
// against the suite's own flags. It has no code of its own: its one job is
// that test. It must not be imported.
package kubernetes
