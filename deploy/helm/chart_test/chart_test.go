package chart_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../jetinfer"
	k8sDir    = "../../k8s"
	namespace = "jetinfer"
)

// object is a rendered or plain manifest: its kind, name and the document.
type object struct {
	Kind, Name, Namespace string
	doc                   []byte
}

// meta is what every Kubernetes object must have.
type meta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func decode(t *testing.T, where string, doc []byte) object {
	t.Helper()
	var m meta
	if err := yaml.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%s: %v\n%s", where, err, doc)
	}
	if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
		t.Fatalf("%s: apiVersion %q kind %q name %q\n%s", where, m.APIVersion, m.Kind, m.Metadata.Name, doc)
	}
	return object{Kind: m.Kind, Name: m.Metadata.Name, Namespace: m.Metadata.Namespace, doc: doc}
}

// render renders the chart with its default values and vals over them.
func render(t *testing.T, vals map[string]any) map[string]object {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "jetinfer", Namespace: namespace, IsInstall: true, Revision: 1},
		chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]object{}
	for name, text := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(text) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			o := decode(t, name, []byte(doc))
			key := o.Kind + "/" + o.Name
			if _, dup := out[key]; dup {
				t.Fatalf("%s rendered twice", key)
			}
			out[key] = o
		}
	}
	return out
}

// plain reads deploy/k8s's manifests of the parts the chart deploys
// (NATS, Redis and the namespace are the deployment's own).
func plain(t *testing.T) map[string]object {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	out := map[string]object{}
	for _, f := range files {
		switch filepath.Base(f) {
		case "kustomization.yaml", "namespace.yaml", "nats.yaml", "redis.yaml":
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yamlv3.NewDecoder(bytes.NewReader(data))
		for {
			var v any
			if err := dec.Decode(&v); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			doc, _ := yaml.Marshal(v)
			o := decode(t, f, doc)
			out[o.Kind+"/"+o.Name] = o
		}
	}
	if len(out) < 10 {
		t.Fatalf("read %d objects from %s", len(out), k8sDir)
	}
	return out
}

// typed decodes o strictly (an unknown or misplaced field fails) into its
// Kubernetes type; custom resources decode into a map.
func typed(t *testing.T, o object) any {
	t.Helper()
	var v any
	switch o.Kind {
	case "Deployment":
		v = &appsv1.Deployment{}
	case "Service":
		v = &corev1.Service{}
	case "ConfigMap":
		v = &corev1.ConfigMap{}
	case "Secret":
		v = &corev1.Secret{}
	case "HorizontalPodAutoscaler":
		v = &autoscalingv2.HorizontalPodAutoscaler{}
	case "PodDisruptionBudget":
		v = &policyv1.PodDisruptionBudget{}
	case "Job":
		v = &batchv1.Job{}
	default:
		v = &map[string]any{}
	}
	if err := yaml.UnmarshalStrict(o.doc, v); err != nil {
		t.Fatalf("%s/%s: %v\n%s", o.Kind, o.Name, err, o.doc)
	}
	return v
}

func TestChartLints(t *testing.T) {
	res := lint.All(chartDir, nil, namespace, true)
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

// The chart renders what deploy/k8s holds (less NATS and Redis, and the
// Secret, which it expects to exist): the same objects by kind and name,
// each a valid Kubernetes object, with the same container ports, probes,
// variables, Service ports, KEDA consumers and configuration keys.
func TestChartMatchesK8sManifests(t *testing.T) {
	got, want := render(t, nil), plain(t)
	for key, w := range want {
		if key == "Secret/jetinfer-auth" {
			if _, ok := got[key]; ok {
				t.Errorf("the chart creates %s; it must use the existing one", key)
			}
			continue
		}
		g, ok := got[key]
		if !ok {
			t.Errorf("deploy/k8s has %s; the chart does not render it", key)
			continue
		}
		if g.Namespace != namespace {
			t.Errorf("%s in namespace %q", key, g.Namespace)
		}
		gv, wv := typed(t, g), typed(t, w)
		switch gv := gv.(type) {
		case *appsv1.Deployment:
			matchDeployment(t, key, gv, wv.(*appsv1.Deployment))
		case *corev1.Service:
			if gp, wp := servicePorts(gv), servicePorts(wv.(*corev1.Service)); !slices.Equal(gp, wp) ||
				!maps.Equal(gv.Spec.Selector, wv.(*corev1.Service).Spec.Selector) {
				t.Errorf("%s: ports %v selector %v; deploy/k8s %v %v", key, gp, gv.Spec.Selector, wp, wv.(*corev1.Service).Spec.Selector)
			}
		case *corev1.ConfigMap:
			if gk, wk := slices.Sorted(maps.Keys(gv.Data)), slices.Sorted(maps.Keys(wv.(*corev1.ConfigMap).Data)); !slices.Equal(gk, wk) {
				t.Errorf("%s: keys %v; deploy/k8s %v", key, gk, wk)
			}
		case *batchv1.Job:
			if g, w := gv.Spec.Template.Spec.Containers[0].Command, wv.(*batchv1.Job).Spec.Template.Spec.Containers[0].Command; !slices.Equal(g, w) {
				t.Errorf("%s: command %v; deploy/k8s %v", key, g, w)
			}
		case *map[string]any:
			if key[:strings.Index(key, "/")] == "ScaledObject" {
				if g, w := triggers(*gv), triggers(*wv.(*map[string]any)); !slices.Equal(g, w) {
					t.Errorf("%s: triggers %v; deploy/k8s %v", key, g, w)
				}
			}
		}
	}
	for _, g := range got {
		typed(t, g)
	}
}

func matchDeployment(t *testing.T, key string, g, w *appsv1.Deployment) {
	t.Helper()
	if !maps.Equal(g.Spec.Selector.MatchLabels, w.Spec.Selector.MatchLabels) ||
		!maps.Equal(g.Spec.Template.Labels, w.Spec.Template.Labels) {
		t.Errorf("%s: labels %v / %v; deploy/k8s %v / %v", key, g.Spec.Selector.MatchLabels, g.Spec.Template.Labels,
			w.Spec.Selector.MatchLabels, w.Spec.Template.Labels)
	}
	if g.Spec.Template.Annotations["prometheus.io/port"] != w.Spec.Template.Annotations["prometheus.io/port"] {
		t.Errorf("%s: scrape port %q; deploy/k8s %q", key, g.Spec.Template.Annotations["prometheus.io/port"],
			w.Spec.Template.Annotations["prometheus.io/port"])
	}
	gc, wc := g.Spec.Template.Spec.Containers, w.Spec.Template.Spec.Containers
	if len(gc) != len(wc) {
		t.Fatalf("%s: %d containers; deploy/k8s %d", key, len(gc), len(wc))
	}
	for i := range gc {
		if gc[i].Name != wc[i].Name || gc[i].Image != wc[i].Image {
			t.Errorf("%s: container %s %s; deploy/k8s %s %s", key, gc[i].Name, gc[i].Image, wc[i].Name, wc[i].Image)
		}
		if !slices.Equal(containerPorts(gc[i]), containerPorts(wc[i])) {
			t.Errorf("%s: ports %v; deploy/k8s %v", key, containerPorts(gc[i]), containerPorts(wc[i]))
		}
		if gc[i].ReadinessProbe == nil || gc[i].ReadinessProbe.HTTPGet.Path != wc[i].ReadinessProbe.HTTPGet.Path {
			t.Errorf("%s: readiness probe %+v", key, gc[i].ReadinessProbe)
		}
		genv := map[string]string{}
		for _, e := range gc[i].Env {
			genv[e.Name] = e.Value
		}
		for _, e := range wc[i].Env {
			if v, ok := genv[e.Name]; !ok || v != e.Value {
				t.Errorf("%s: %s=%q; deploy/k8s sets %q", key, e.Name, v, e.Value)
			}
		}
		if !slices.Equal(mounts(gc[i]), mounts(wc[i])) {
			t.Errorf("%s: mounts %v; deploy/k8s %v", key, mounts(gc[i]), mounts(wc[i]))
		}
	}
}

func containerPorts(c corev1.Container) []string {
	var out []string
	for _, p := range c.Ports {
		out = append(out, p.Name+":"+itoa(int(p.ContainerPort)))
	}
	return out
}

func mounts(c corev1.Container) []string {
	var out []string
	for _, m := range c.VolumeMounts {
		out = append(out, m.Name+":"+m.MountPath)
	}
	return out
}

func servicePorts(s *corev1.Service) []string {
	var out []string
	for _, p := range s.Spec.Ports {
		out = append(out, p.Name+":"+itoa(int(p.Port))+"->"+p.TargetPort.String())
	}
	return out
}

// triggers lists a ScaledObject's triggers as type, stream, consumer and
// lag threshold.
func triggers(so map[string]any) []string {
	spec, _ := so["spec"].(map[string]any)
	ts, _ := spec["triggers"].([]any)
	var out []string
	for _, tr := range ts {
		m, _ := tr.(map[string]any)
		md, _ := m["metadata"].(map[string]any)
		out = append(out, strings.Join([]string{str(m["type"]), str(md["stream"]), str(md["consumer"]), str(md["lagThreshold"]),
			str(md["natsServerMonitoringEndpoint"]), str(md["account"]),
			str(md["serverAddress"]), str(md["query"]), str(md["threshold"])}, " "))
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func itoa(n int) string {
	b, _ := yaml.Marshal(n)
	return strings.TrimSpace(string(b))
}

// The ServiceMonitor scrapes the ops port of ingest and of every worker,
// and the PrometheusRule holds deploy/prometheus/alerts.yml's rules.
func TestChartMonitoring(t *testing.T) {
	got := render(t, nil)
	sm, ok := got["ServiceMonitor/jetinfer"]
	if !ok {
		t.Fatal("no ServiceMonitor")
	}
	var smv struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(sm.doc, &smv); err != nil || len(smv.Spec.Endpoints) != 1 || smv.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("ServiceMonitor: %v\n%s", err, sm.doc)
	}
	scraped := map[string]bool{}
	for key, o := range got {
		if o.Kind != "Service" {
			continue
		}
		svc := typed(t, o).(*corev1.Service)
		selected := len(smv.Spec.Selector.MatchLabels) > 0
		for k, v := range smv.Spec.Selector.MatchLabels {
			selected = selected && svc.Labels[k] == v
		}
		if !selected {
			continue
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == smv.Spec.Endpoints[0].Port }) {
			t.Errorf("%s is scraped but has no port %q", key, smv.Spec.Endpoints[0].Port)
		}
		scraped[svc.Spec.Selector["app"]+"/"+svc.Spec.Selector["task"]] = true
	}
	for key, o := range got {
		if o.Kind != "Deployment" {
			continue
		}
		d := typed(t, o).(*appsv1.Deployment)
		if !scraped[d.Spec.Selector.MatchLabels["app"]+"/"+d.Spec.Selector.MatchLabels["task"]] {
			t.Errorf("no scraped Service selects %s", key)
		}
	}

	rule, ok := got["PrometheusRule/jetinfer"]
	if !ok {
		t.Fatal("no PrometheusRule")
	}
	alerts, err := os.ReadFile("../../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []map[string]any `json:"groups"`
	}
	var pr struct {
		Spec struct {
			Groups []map[string]any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(alerts, &file); err != nil || len(file.Groups) == 0 {
		t.Fatalf("alerts.yml: %v", err)
	}
	if err := yaml.Unmarshal(rule.doc, &pr); err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(file.Groups)
	b, _ := yaml.Marshal(pr.Spec.Groups)
	if !bytes.Equal(a, b) {
		t.Errorf("PrometheusRule groups differ from alerts.yml:\n%s\nwant\n%s", b, a)
	}

	off := render(t, map[string]any{"monitoring": map[string]any{"serviceMonitor": false, "prometheusRule": false}})
	for key := range off {
		if strings.HasPrefix(key, "ServiceMonitor/") || strings.HasPrefix(key, "PrometheusRule/") {
			t.Errorf("%s rendered with monitoring off", key)
		}
	}
}

// A worker added in values gets its Deployment, ops Service and a
// ScaledObject on its own task's interactive consumer and shared lanes'
// backlog.
func TestChartWorkerPerTask(t *testing.T) {
	got := render(t, map[string]any{"workers": []any{map[string]any{
		"name": "worker-embed", "task": "embed", "image": "jetinfer/worker-cpu:latest", "models": "/models/embed", "device": "cpu",
		"replicas": 1, "minReplicas": 1, "maxReplicas": 4, "cooldownPeriod": 60, "terminationGracePeriodSeconds": 45,
		"lagThreshold": map[string]any{"interactive": "10", "bulk": "100", "backfill": "100"},
		"resources":    map[string]any{"limits": map[string]any{"cpu": "1"}},
	}}})
	for _, key := range []string{"Deployment/worker-embed", "Service/worker-embed-ops", "ScaledObject/worker-embed"} {
		if _, ok := got[key]; !ok {
			t.Fatalf("no %s in %v", key, slices.Sorted(maps.Keys(got)))
		}
	}
	if _, ok := got["Deployment/worker-sentiment"]; ok {
		t.Error("the default workers are rendered beside the ones given")
	}
	so := typed(t, got["ScaledObject/worker-embed"]).(*map[string]any)
	tr := triggers(*so)
	want := []string{"JOBS jobs-interactive-embed 10 ", `{lane="bulk",task="embed"}) 100`, `{lane="backfill",task="embed"}) 100`}
	if len(tr) != len(want) {
		t.Fatalf("triggers %v, want %d", tr, len(want))
	}
	for i, w := range want {
		if !strings.Contains(tr[i], w) {
			t.Errorf("trigger %d: %s, want it to hold %s", i, tr[i], w)
		}
	}
}
