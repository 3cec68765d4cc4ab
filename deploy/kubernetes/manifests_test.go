// Package kubernetes_test checks deploy/kubernetes against the program: every
// manifest decodes strictly into its Kubernetes API type, every setting it
// gives is one tidemark reads, with a value tidemark accepts, the probes and
// ports are those the worker serves, and every metric the alerts and the
// autoscalers name is one /metrics exposes. promtool checks the alerts and
// runs their unit tests.
package kubernetes_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// The custom resources' types, as their operators define them, reduced to
// the fields these manifests use; decoded strictly, so a misspelt or
// misplaced field fails. (KEDA's and the Prometheus Operator's own Go
// modules bring their controllers' dependencies with them.)
type (
	kustomization struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Labels     []struct {
			Pairs map[string]string `json:"pairs"`
		} `json:"labels"`
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
		Resources []string `json:"resources"`
	}
	scaledObject struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			ScaleTargetRef struct {
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			MinReplicaCount int `json:"minReplicaCount"`
			MaxReplicaCount int `json:"maxReplicaCount"`
			CooldownPeriod  int `json:"cooldownPeriod,omitempty"`
			Triggers        []struct {
				Type       string            `json:"type"`
				MetricType string            `json:"metricType,omitempty"`
				Metadata   map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	prometheusRule struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"spec"`
	}
	ruleGroup struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	}
	serviceMonitor struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port          string `json:"port"`
				Path          string `json:"path"`
				Interval      string `json:"interval"`
				Authorization struct {
					Credentials corev1.SecretKeySelector `json:"credentials"`
				} `json:"authorization"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
)

// manifests is every object of the kustomization, by kind.
type manifests struct {
	configMaps      []corev1.ConfigMap
	deployments     []appsv1.Deployment
	jobs            []batchv1.Job
	services        []corev1.Service
	pdbs            []policyv1.PodDisruptionBudget
	scaledObjects   []scaledObject
	rules           []prometheusRule
	serviceMonitors []serviceMonitor
}

// Settings whose values are secrets: a manifest names them only through a
// Secret, never with a value.
var secretSettings = []string{"DATABASE_URL", "MIGRATE_DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN",
	"MEMBER_JWT_SECRET", "METRICS_TOKEN"}

// Stand-ins for the Secret's values, valid as tidemark checks them.
var secretValues = map[string]string{
	"database-url":         "postgres://tidemark@db.example.com:5432/tidemark?sslmode=require",
	"migrate-database-url": "postgres://tidemark@db.example.com:5432/tidemark?sslmode=require",
	"redis-url":            "redis://redis.example.com:6379/0",
	"member-jwt-secret":    strings.Repeat("m", 32),
	"metrics-token":        strings.Repeat("t", 24),
}

func load(t *testing.T) manifests {
	t.Helper()
	b, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(b, &k), "kustomization.yaml")
	require.Equal(t, "Kustomization", k.Kind)

	// Every manifest in the folder is a resource of the kustomization.
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" || f == "alerts_test.yaml" })
	require.ElementsMatch(t, files, k.Resources, "kustomization.yaml lists exactly the manifests here")

	var m manifests
	for _, f := range k.Resources {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), "%s #%d", f, i)
			where := fmt.Sprintf("%s #%d (%s)", f, i, tm.Kind)
			strict := func(into any) { require.NoError(t, yaml.UnmarshalStrict(doc, into), where) }
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				var o corev1.ConfigMap
				strict(&o)
				m.configMaps = append(m.configMaps, o)
			case "apps/v1 Deployment":
				var o appsv1.Deployment
				strict(&o)
				m.deployments = append(m.deployments, o)
			case "batch/v1 Job":
				var o batchv1.Job
				strict(&o)
				m.jobs = append(m.jobs, o)
			case "v1 Service":
				var o corev1.Service
				strict(&o)
				// kustomize adds the kustomization's labels to each object.
				for _, l := range k.Labels {
					for key, v := range l.Pairs {
						if o.Labels == nil {
							o.Labels = map[string]string{}
						}
						o.Labels[key] = v
					}
				}
				m.services = append(m.services, o)
			case "policy/v1 PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strict(&o)
				m.pdbs = append(m.pdbs, o)
			case "keda.sh/v1alpha1 ScaledObject":
				var o scaledObject
				strict(&o)
				m.scaledObjects = append(m.scaledObjects, o)
			case "monitoring.coreos.com/v1 PrometheusRule":
				var o prometheusRule
				strict(&o)
				m.rules = append(m.rules, o)
			case "monitoring.coreos.com/v1 ServiceMonitor":
				var o serviceMonitor
				strict(&o)
				m.serviceMonitors = append(m.serviceMonitors, o)
			case "v1 Secret":
				t.Fatalf("%s: a Secret in the manifests; reference the one the operator creates", where)
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
		}
	}
	require.Len(t, m.configMaps, 1)
	return m
}

// envOf is a container's environment as the kubelet would give it, and the
// names it sets; a secret reference must name the Secret tidemark and a key
// the README lists, and gets that key's stand-in value.
func envOf(t *testing.T, m manifests, c corev1.Container) (map[string]string, []string) {
	t.Helper()
	env := map[string]string{}
	var names []string
	for _, from := range c.EnvFrom {
		require.NotNil(t, from.ConfigMapRef, "container %s: envFrom only from the ConfigMap", c.Name)
		require.Equal(t, m.configMaps[0].Name, from.ConfigMapRef.Name)
		for k, v := range m.configMaps[0].Data {
			env[k] = v
			names = append(names, k)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil:
			ref := e.ValueFrom.SecretKeyRef
			require.NotNil(t, ref, "container %s: %s comes from a Secret or is given", c.Name, e.Name)
			require.Equal(t, "tidemark", ref.Name, "%s: the Secret tidemark", e.Name)
			v, ok := secretValues[ref.Key]
			require.True(t, ok, "%s: key %q of the Secret is not one the README lists", e.Name, ref.Key)
			env[e.Name] = v
		default:
			require.NotContains(t, secretSettings, e.Name, "container %s: %s is a secret, given as a value", c.Name, e.Name)
			env[e.Name] = e.Value
		}
		names = append(names, e.Name)
	}
	for k := range m.configMaps[0].Data {
		require.NotContains(t, secretSettings, k, "the ConfigMap holds the secret %s", k)
	}
	return env, names
}

// configOf checks that every name is a setting tidemark reads and that the
// whole environment is one it accepts, and returns the configuration.
func configOf(t *testing.T, where string, env map[string]string, names []string) config.Config {
	t.Helper()
	read := map[string]bool{}
	cfg, err := config.FromEnv(func(k string) string { read[k] = true; return env[k] })
	require.NoError(t, err, "%s: tidemark refuses its settings", where)
	for _, n := range names {
		require.True(t, read[n], "%s: %s is not a setting tidemark reads", where, n)
	}
	return cfg
}

func TestManifestsMatchTheProgram(t *testing.T) {
	m := load(t)
	require.NotEmpty(t, m.deployments)
	require.Len(t, m.jobs, 1)

	// The migration Job runs worker migrate with an accepted configuration.
	job := m.jobs[0]
	require.Equal(t, corev1.RestartPolicyNever, job.Spec.Template.Spec.RestartPolicy)
	c := job.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"migrate"}, c.Args)
	env, names := envOf(t, m, c)
	configOf(t, "Job "+job.Name, env, names)

	// A worker to ask which paths it serves and which metrics it exposes.
	// It runs with the ConfigMap's deadlines, which its gauges follow.
	w := testbin.StartWorker(t, "DATABASE_URL="+testkit.DatabaseURL(t), "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false",
		"BATCH_DEADLINES="+m.configMaps[0].Data["BATCH_DEADLINES"])
	exposed := exposedMetrics(t, w.Addr)

	deployments := map[string]config.Config{}
	for _, d := range m.deployments {
		where := "Deployment " + d.Name
		spec := d.Spec.Template.Spec
		require.Len(t, spec.Containers, 1, where)
		c := spec.Containers[0]
		env, names := envOf(t, m, c)
		cfg := configOf(t, where, env, names)
		deployments[d.Name] = cfg

		// Labels: the selector picks the template's pods.
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		require.NoError(t, err)
		require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: its selector matches its pods", where)

		// The grace period outlasts SHUTDOWN_GRACE.
		require.NotNil(t, spec.TerminationGracePeriodSeconds, where)
		grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		require.Greater(t, grace, cfg.ShutdownGrace, "%s: terminationGracePeriodSeconds above SHUTDOWN_GRACE", where)

		// The port the probes use is the one HTTP_ADDR listens on.
		_, port, err := net.SplitHostPort(cfg.HTTPAddr)
		require.NoError(t, err, "%s: HTTP_ADDR", where)
		require.Len(t, c.Ports, 1, where)
		require.Equal(t, port, fmt.Sprint(c.Ports[0].ContainerPort), "%s: containerPort is HTTP_ADDR's port", where)
		require.NotEqual(t, "127.0.0.1", strings.Split(cfg.HTTPAddr, ":")[0], "%s: HTTP_ADDR reachable from the kubelet", where)
		for probe, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			require.NotNil(t, p, "%s: %s probe", where, probe)
			require.NotNil(t, p.HTTPGet, "%s: %s probe is an HTTP GET", where, probe)
			require.Equal(t, c.Ports[0].Name, p.HTTPGet.Port.String(), "%s: %s probe's port", where, probe)
			resp, err := http.Get("http://" + w.Addr + p.HTTPGet.Path)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: the worker serves %s", where, p.HTTPGet.Path)
		}
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, where)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, where)

		// Resources, and a non-root user the image has.
		require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s: a CPU request", where)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: a memory limit", where)
		require.NotNil(t, spec.SecurityContext.RunAsNonRoot)
		require.True(t, *spec.SecurityContext.RunAsNonRoot, where)

		// OPERATORS_FILE is in a mounted volume.
		if f := env["OPERATORS_FILE"]; f != "" {
			mounted := slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool {
				return strings.HasPrefix(f, v.MountPath+"/")
			})
			require.True(t, mounted, "%s: OPERATORS_FILE %s is mounted", where, f)
		}

		// A disruption budget covers it.
		covered := slices.ContainsFunc(m.pdbs, func(p policyv1.PodDisruptionBudget) bool {
			s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			return err == nil && s.Matches(labels.Set(d.Spec.Template.Labels))
		})
		require.True(t, covered, "%s: a PodDisruptionBudget selects its pods", where)
	}

	// Each worker deployment has a ScaledObject reading a queue it works, or
	// CPU, with metrics /metrics exposes.
	for _, so := range m.scaledObjects {
		cfg, ok := deployments[so.Spec.ScaleTargetRef.Name]
		require.True(t, ok, "ScaledObject %s scales a Deployment of these manifests", so.Metadata.Name)
		require.Positive(t, so.Spec.MinReplicaCount)
		require.GreaterOrEqual(t, so.Spec.MaxReplicaCount, so.Spec.MinReplicaCount)
		for _, tr := range so.Spec.Triggers {
			switch tr.Type {
			case "cpu":
				require.Equal(t, "Utilization", tr.MetricType)
			case "prometheus":
				requireExposed(t, "ScaledObject "+so.Metadata.Name, tr.Metadata["query"], exposed)
				for _, q := range regexp.MustCompile(`queue="([^"]+)"`).FindAllStringSubmatch(tr.Metadata["query"], -1) {
					_, works := cfg.Queues[q[1]]
					require.True(t, works, "ScaledObject %s scales on queue %s, which its deployment does not work", so.Metadata.Name, q[1])
				}
				require.NotEmpty(t, tr.Metadata["threshold"])
			default:
				t.Fatalf("ScaledObject %s: trigger %s", so.Metadata.Name, tr.Type)
			}
		}
	}
	for name := range deployments {
		has := slices.ContainsFunc(m.scaledObjects, func(so scaledObject) bool { return so.Spec.ScaleTargetRef.Name == name })
		require.True(t, has, "Deployment %s has a ScaledObject", name)
	}

	// The Services and the ServiceMonitor select pods and ports that exist.
	for _, s := range m.services {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		n := 0
		for _, d := range m.deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				n++
				for _, p := range s.Spec.Ports {
					require.Equal(t, d.Spec.Template.Spec.Containers[0].Ports[0].Name, p.TargetPort.String(), "Service %s", s.Name)
				}
			}
		}
		require.Positive(t, n, "Service %s selects pods", s.Name)
	}
	require.Len(t, m.serviceMonitors, 1)
	sm := m.serviceMonitors[0]
	smSel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	require.NoError(t, err)
	var scraped []string
	for _, s := range m.services {
		if smSel.Matches(labels.Set(s.Labels)) {
			scraped = append(scraped, s.Name)
		}
	}
	require.Equal(t, []string{"tidemark-metrics"}, scraped, "the ServiceMonitor scrapes each pod once")
	require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
	require.Equal(t, "metrics-token", sm.Spec.Endpoints[0].Authorization.Credentials.Key)

	// The alerts: severity, for, and metrics /metrics exposes.
	require.Len(t, m.rules, 1)
	var alerts []string
	for _, g := range m.rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.For, "%s has a for: clause", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			requireExposed(t, "alert "+r.Alert, r.Expr, exposed)
		}
	}
	for _, want := range []string{"TidemarkWorkerDown", "TidemarkQueueLagging", "TidemarkJobsDiscarded",
		"TidemarkOrderStuckSending", "TidemarkReconciliationMismatches", "TidemarkMetricsSourceDown", "TidemarkBatchLate", "TidemarkPartnerBreakerOpen"} {
		require.Contains(t, alerts, want)
	}
}

// promtool checks the alerts' rules and runs alerts_test.yaml against them.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool (Debian's prometheus package, which scripts/services.sh installs)")
	m := load(t)
	require.Len(t, m.rules, 1)
	dir := t.TempDir()
	rules, err := yaml.Marshal(map[string]any{"groups": m.rules[0].Spec.Groups})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644))
	tests, err := os.ReadFile("alerts_test.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644))
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// exposedMetrics is every metric name the worker at addr serves.
func exposedMetrics(t *testing.T, addr string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	names := map[string]bool{"up": true} // Prometheus' own, per scrape target
	for n, f := range fams {
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
	}
	return names
}

var (
	labelBlock = regexp.MustCompile(`\{[^}]*\}`)
	metricName = regexp.MustCompile(`\b(tidemark_[a-z0-9_]+|river_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)
)

// requireExposed checks that every metric expr names is exposed.
func requireExposed(t *testing.T, where, expr string, exposed map[string]bool) {
	t.Helper()
	found := metricName.FindAllString(labelBlock.ReplaceAllString(expr, ""), -1)
	require.NotEmpty(t, found, "%s: %q names no metric", where, expr)
	for _, n := range found {
		require.True(t, exposed[n], "%s: %s is not a metric /metrics exposes", where, n)
	}
}
