// Package kubernetes holds the manifests that run the suite as n shards on
// a Kubernetes cluster (an Indexed Job) and merge their records (a Job
// running -from); see README.md, "Load from many hosts on Kubernetes".
// Its test decodes the manifests strictly with the Kubernetes API types and
// checks the wiring that a typo would silently break: the completion index
// is the shard, the number of shards is the Job's completions and
// parallelism, every pod reads one start instant, the merge reads what the
// shards wrote.
package kubernetes

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/inferbench/inferbench/internal/cli"
)

// decode reads a manifest into an API object, refusing unknown fields (a
// misspelt key would otherwise be dropped by the API server's lenient
// decoding, or rejected only at apply time).
func decode[T any](t *testing.T, path string) *T {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var v T
	require.NoError(t, yaml.UnmarshalStrict(b, &v), path)
	return &v
}

// completionIndexAnnotation is where the Job controller puts a pod's index.
const completionIndexAnnotation = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

// suiteFlags are the flags the suite's test binary accepts: the -test.*
// flags the manifests use, and every flag of the suite's command line
// (internal/cli, so a flag renamed there fails this test).
func suiteFlags(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("inferbench.test", flag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	cli.Register(fs)
	for _, f := range []string{"test.run", "test.bench", "test.benchtime", "test.count"} {
		fs.String(f, "", "")
	}
	require.NotNil(t, fs.Lookup("shard"), "the suite defines -shard")
	return fs
}

// parseArgs parses a container's args as the suite would, after expanding
// $(VAR) references to the container's env variables as the kubelet does
// (a reference to an undefined variable stays as written, as in Kubernetes).
func parseArgs(fs *flag.FlagSet, c corev1.Container, vars map[string]string) (map[string]string, error) {
	var args []string
	for _, a := range c.Args {
		args = append(args, regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := vars[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		}))
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("container %s: args: %w", c.Name, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("container %s: args %q are not flags", c.Name, fs.Args())
	}
	got := map[string]string{}
	fs.Visit(func(f *flag.Flag) { got[f.Name] = f.Value.String() })
	return got, nil
}

// checkShards checks the shards' Job against the schedule's ConfigMap and
// returns the first wrong wiring, or the parsed flags of its container.
func checkShards(fs *flag.FlagSet, job *batchv1.Job, schedule *corev1.ConfigMap) (map[string]string, error) {
	s := job.Spec
	switch {
	case s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion:
		return nil, fmt.Errorf("completionMode must be Indexed: the completion index is the shard")
	case s.Completions == nil || *s.Completions < 1:
		return nil, fmt.Errorf("completions must be the number of shards")
	case s.Parallelism == nil || *s.Parallelism != *s.Completions:
		return nil, fmt.Errorf("parallelism must equal completions (%d): every shard must run at once, or the later ones miss the schedule", *s.Completions)
	case s.BackoffLimit == nil || *s.BackoffLimit != 0:
		return nil, fmt.Errorf("backoffLimit must be 0: a retried shard starts after the schedule and refuses to run")
	case s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever:
		return nil, fmt.Errorf("restartPolicy must be Never: a restarted shard misses the schedule")
	case len(s.Template.Spec.Containers) != 1:
		return nil, fmt.Errorf("want one container, the suite")
	}
	n := int(*s.Completions)
	c := s.Template.Spec.Containers[0]
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Name == "JOB_COMPLETION_INDEX":
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != completionIndexAnnotation {
				return nil, fmt.Errorf("env JOB_COMPLETION_INDEX must come from the pod's %s", completionIndexAnnotation)
			}
			vars[e.Name] = "0" // any index: checked below for all of them
		case e.Name == "START_AT":
			ref := e.ValueFrom
			if ref == nil || ref.ConfigMapKeyRef == nil || ref.ConfigMapKeyRef.Name != schedule.Name {
				return nil, fmt.Errorf("env START_AT must come from the ConfigMap %s, one value for every pod", schedule.Name)
			}
			v, ok := schedule.Data[ref.ConfigMapKeyRef.Key]
			if !ok {
				return nil, fmt.Errorf("ConfigMap %s has no key %q", schedule.Name, ref.ConfigMapKeyRef.Key)
			}
			vars[e.Name] = v
		case e.Value != "":
			vars[e.Name] = e.Value
		}
	}
	// Every index must give its own shard of n.
	var flags map[string]string
	for i := range n {
		vars["JOB_COMPLETION_INDEX"] = strconv.Itoa(i)
		f, err := parseArgs(fs, c, vars)
		if err != nil {
			return nil, err
		}
		if want := fmt.Sprintf("%d/%d", i, n); f["shard"] != want {
			return nil, fmt.Errorf("pod of completion index %d runs -shard=%s, want %s (-shard=$(JOB_COMPLETION_INDEX)/%d)", i, f["shard"], want, n)
		}
		flags = f
	}
	if _, err := time.Parse(time.RFC3339, flags["start-at"]); err != nil {
		return nil, fmt.Errorf("-start-at=%s must be an RFC 3339 instant from the schedule: %w", flags["start-at"], err)
	}
	if strings.Contains(flags["concurrency"], ",") {
		if d, err := time.ParseDuration(flags["start-every"]); err != nil || d <= 0 {
			return nil, fmt.Errorf("several levels need -start-every, the spacing of the samples' start instants")
		}
	}
	if flags["engines"] == "" || strings.HasPrefix(flags["engines"], "fake") {
		return nil, fmt.Errorf("-engines=%s: shards must load one engine by URL (an in-process fake engine is each shard's own)", flags["engines"])
	}
	if err := mounted(c, s.Template.Spec, flags["out"]); err != nil {
		return nil, fmt.Errorf("-out: %w", err)
	}
	return flags, nil
}

// mounted checks that path lies on a volume of the pod backed by a
// persistent volume claim: a container's own file system is gone when the
// pod ends.
func mounted(c corev1.Container, pod corev1.PodSpec, path string) error {
	for _, m := range c.VolumeMounts {
		if path != m.MountPath && !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil {
				return nil
			}
		}
		return fmt.Errorf("%s is on volume %s, which is not a persistent volume claim", path, m.Name)
	}
	return fmt.Errorf("%s is on no mounted volume", path)
}

// TestShardsJobWiring checks the shipped manifests, then each of the
// wrong wirings a hand edit makes, which it must refuse.
func TestShardsJobWiring(t *testing.T) {
	fs := suiteFlags(t)
	schedule := decode[corev1.ConfigMap](t, "schedule.yaml")
	pvc := decode[corev1.PersistentVolumeClaim](t, "results-pvc.yaml")
	assert.Contains(t, pvc.Spec.AccessModes, corev1.ReadWriteMany, "shards on several nodes write one folder")

	flags, err := checkShards(fs, decode[batchv1.Job](t, "shards-job.yaml"), schedule)
	require.NoError(t, err)

	merge := decode[batchv1.Job](t, "merge-job.yaml")
	require.Len(t, merge.Spec.Template.Spec.Containers, 1)
	mc := merge.Spec.Template.Spec.Containers[0]
	mf, err := parseArgs(suiteFlags(t), mc, nil)
	require.NoError(t, err)
	assert.Equal(t, flags["out"], mf["from"], "the merge reads the shards' -out")
	assert.NoError(t, mounted(mc, merge.Spec.Template.Spec, mf["from"]))
	assert.NoError(t, mounted(mc, merge.Spec.Template.Spec, mf["out"]))
	job := decode[batchv1.Job](t, "shards-job.yaml")
	assert.Equal(t, job.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, pvc.Name)
	assert.Equal(t, merge.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, pvc.Name)

	df, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	assert.Contains(t, string(df), "go test -c", "the image is the compiled suite")
	for _, c := range []corev1.Container{job.Spec.Template.Spec.Containers[0], mc} {
		require.Len(t, c.Command, 1)
		assert.Contains(t, string(df), "COPY --from=build /out/inferbench.test "+c.Command[0], "the image has the command the Job runs")
	}

	tests := []struct {
		name    string
		mutate  func(j *batchv1.Job)
		wantErr string
	}{
		// The shard's N disagrees with completions: 4 pods told there are
		// 3 shards would run a third more streams than asked for.
		{"wrong N", func(j *batchv1.Job) { replaceArg(j, "-shard=", "-shard=$(JOB_COMPLETION_INDEX)/3") }, "index 0 runs -shard=0/3, want 0/4"},
		// Every pod the same shard.
		{"fixed index", func(j *batchv1.Job) { replaceArg(j, "-shard=", "-shard=0/4") }, "index 1 runs -shard=0/4"},
		// The index read from the wrong place.
		{"index from the pod name", func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath = "metadata.name"
		}, "JOB_COMPLETION_INDEX must come from"},
		// Not indexed: no completion index at all.
		{"non-indexed", func(j *batchv1.Job) { m := batchv1.NonIndexedCompletion; j.Spec.CompletionMode = &m }, "Indexed"},
		// Fewer pods at once than shards: the later ones miss the schedule.
		{"parallelism below completions", func(j *batchv1.Job) { p := int32(2); j.Spec.Parallelism = &p }, "parallelism must equal"},
		// A start instant per pod instead of one for all.
		{"start per pod", func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].Env[1].ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.startTime"}}
		}, "START_AT must come from the ConfigMap"},
		// -start-at not wired to the variable.
		{"start-at unset", func(j *batchv1.Job) { replaceArg(j, "-start-at=", "-start-at=$(START)") }, "must be an RFC 3339 instant"},
		// Results inside the container, lost with the pod.
		{"out not on the claim", func(j *batchv1.Job) { replaceArg(j, "-out=", "-out=/tmp/run") }, "on no mounted volume"},
		// A flag the suite does not have.
		{"unknown flag", func(j *batchv1.Job) { replaceArg(j, "-plot=", "-plots=false") }, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := decode[batchv1.Job](t, "shards-job.yaml")
			tt.mutate(j)
			_, err := checkShards(suiteFlags(t), j, schedule)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// replaceArg replaces the container arg starting with prefix.
func replaceArg(j *batchv1.Job, prefix, arg string) {
	c := &j.Spec.Template.Spec.Containers[0]
	for i, a := range c.Args {
		if strings.HasPrefix(a, prefix) {
			c.Args[i] = arg
			return
		}
	}
	panic("no arg " + prefix)
}

// TestDecodeIsStrict pins that a misspelt field fails the decoding this
// test relies on.
func TestDecodeIsStrict(t *testing.T) {
	var j batchv1.Job
	err := yaml.UnmarshalStrict([]byte("apiVersion: batch/v1\nkind: Job\nspec:\n  completionMod: Indexed\n"), &j)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "completionMod")
}
