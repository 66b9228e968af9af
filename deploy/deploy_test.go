// Package deploy_test validates the deployment files, since no container
// engine or cluster runs where the tests do: every YAML document parses and
// is a well-formed Kubernetes object, every JETINFER_* variable set
// anywhere is a flag of the binary it configures, the KEDA triggers name
// the stream and consumers the code creates, the NATS config embedded for
// Kubernetes parses as a cluster, the alerting rules pass Prometheus's own
// checks, and the Dockerfiles have the stages and commands the binaries
// need.
package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"gopkg.in/yaml.v3"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// object is the part of a Kubernetes object the tests read.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas       *int `yaml:"replicas"`
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
		Triggers    []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	Containers []container `yaml:"containers"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
		} `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
}

// flagsOf returns the environment variables a binary's flags answer to.
func flagsOf(cfg interface{ RegisterFlags(*flag.FlagSet) }) map[string]bool {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { env[config.EnvName(f.Name)] = true })
	return env
}

var (
	ingestEnv = flagsOf(&config.Ingest{})
	workerEnv = flagsOf(&config.Worker{})
)

func loadK8s(t *testing.T) (map[string][]object, []string) {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	byKind := map[string][]object{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s document %d: apiVersion %q kind %q name %q", f, i, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			if o.Kind != "Namespace" && o.Metadata.Namespace != "jetinfer" {
				t.Errorf("%s: %s/%s is in namespace %q", f, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	return byKind, files
}

func find(objs []object, name string) *object {
	for i := range objs {
		if objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	var k struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	data, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	_, files := loadK8s(t)
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

// Every workload's containers set only variables their binary reads, and
// serve readiness at /readyz.
func TestWorkloadsUseRealFlags(t *testing.T) {
	byKind, _ := loadK8s(t)
	cm := find(byKind["ConfigMap"], "jetinfer-config")
	if cm == nil {
		t.Fatal("no ConfigMap jetinfer-config")
	}
	for k := range cm.Data {
		if !ingestEnv[k] || !workerEnv[k] {
			t.Errorf("jetinfer-config sets %s, which is not a flag of both ingest and worker", k)
		}
	}
	deployments := byKind["Deployment"]
	if find(deployments, "ingest") == nil {
		t.Fatal("no ingest Deployment")
	}
	workers := 0
	for _, d := range deployments {
		if !mapsSubset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
			t.Errorf("%s: selector %v does not match pod labels %v", d.Metadata.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			allowed := ingestEnv
			if strings.HasPrefix(d.Metadata.Name, "worker") {
				allowed = workerEnv
				workers++
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, config.EnvPrefix) && !allowed[e.Name] {
					t.Errorf("%s/%s sets %s, which the binary does not read", d.Metadata.Name, c.Name, e.Name)
				}
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s/%s: no /readyz readiness probe", d.Metadata.Name, c.Name)
			}
		}
	}
	if workers == 0 {
		t.Fatal("no worker Deployment")
	}
}

func mapsSubset(sub, super map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

// KEDA scales each worker Deployment on the backlog of each lane of the
// task its model serves: the interactive consumer's lag, by the name the
// code gives it, and the jobs queued on each shared lane across tenants.
func TestKEDAScalesWorkersOnTheirConsumers(t *testing.T) {
	byKind, _ := loadK8s(t)
	sos := byKind["ScaledObject"]
	if len(sos) == 0 {
		t.Fatal("no ScaledObject")
	}
	for _, so := range sos {
		d := find(byKind["Deployment"], so.Spec.ScaleTargetRef.Name)
		if d == nil {
			t.Errorf("ScaledObject %s targets missing Deployment %q", so.Metadata.Name, so.Spec.ScaleTargetRef.Name)
			continue
		}
		task := d.Spec.Template.Metadata.Labels["task"]
		var models string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "JETINFER_MODELS" {
				models = e.Value
			}
		}
		if task == "" || models == "" {
			t.Errorf("%s: pods need a task label and JETINFER_MODELS", d.Metadata.Name)
		}
		// The interactive lane scales on its consumer's lag; the shared
		// lanes, whose jobs wait on one consumer per tenant, on what ingest
		// exports of JOBS per lane and task.
		var consumers, queries []string
		for _, tr := range so.Spec.Triggers {
			m := tr.Metadata
			switch tr.Type {
			case "nats-jetstream":
				if m["stream"] != job.StreamJobs || m["lagThreshold"] == "" || !strings.HasSuffix(m["natsServerMonitoringEndpoint"], ":8222") {
					t.Errorf("%s: trigger %v", so.Metadata.Name, m)
				}
				consumers = append(consumers, m["consumer"])
			case "prometheus":
				if m["threshold"] == "" || !strings.HasPrefix(m["serverAddress"], "http") {
					t.Errorf("%s: trigger %v", so.Metadata.Name, m)
				}
				queries = append(queries, m["query"])
			default:
				t.Errorf("%s: trigger %q, want nats-jetstream or prometheus", so.Metadata.Name, tr.Type)
			}
		}
		for _, l := range job.Lanes {
			if l.Shared() {
				want := `max(jetinfer_queue_pending{lane="` + string(l) + `",task="` + task + `"})`
				if !slices.Contains(queries, want) {
					t.Errorf("%s: no trigger on %s (have %v)", so.Metadata.Name, want, queries)
				}
				continue
			}
			if want := queue.ConsumerName(l, task); !slices.Contains(consumers, want) {
				t.Errorf("%s: no trigger on consumer %s (have %v)", so.Metadata.Name, want, consumers)
			}
		}
	}
	hpa := find(byKind["HorizontalPodAutoscaler"], "ingest")
	if hpa == nil || hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "ingest" ||
		hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas <= hpa.Spec.MinReplicas {
		t.Fatalf("ingest HPA missing or malformed: %+v", hpa)
	}
}

// NATS runs as a 3-node cluster whose config parses and routes to all
// three pods; the streams job creates R3 streams.
func TestNATSClusterManifest(t *testing.T) {
	byKind, _ := loadK8s(t)
	ss := find(byKind["StatefulSet"], "nats")
	if ss == nil || ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Fatalf("nats StatefulSet missing or not 3 replicas: %+v", ss)
	}
	cm := find(byKind["ConfigMap"], "nats-config")
	if cm == nil {
		t.Fatal("no nats-config ConfigMap")
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(cm.Data["nats.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_NAME", "nats-1")
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if !strings.Contains(string(mustRead(t, "k8s/nats.yaml")), "ldm="+o.PidFile) || o.PidFile == "" {
		t.Errorf("the preStop lame-duck signal must use the config's pid_file %q", o.PidFile)
	}
	if o.SyncInterval != 2*time.Minute {
		t.Errorf("sync_interval is %s, want 2m (a bare 2m parses as 2,000,000 seconds: quote it)", o.SyncInterval)
	}
	if o.ServerName != "nats-1" || !o.JetStream || o.Cluster.Name == "" || len(o.Routes) != 3 {
		t.Fatalf("server_name %q jetstream %v cluster %q routes %d", o.ServerName, o.JetStream, o.Cluster.Name, len(o.Routes))
	}
	for i, r := range o.Routes {
		if want := "nats-" + string(rune('0'+i)) + ".nats"; r.Hostname() != want {
			t.Errorf("route %d is %s, want the pod %s", i, r.Hostname(), want)
		}
	}
	if find(byKind["StatefulSet"], "redis") == nil || find(byKind["Service"], "redis") == nil {
		t.Error("no Redis StatefulSet and Service")
	}
	jobObj := find(byKind["Job"], "jetinfer-streams")
	if jobObj == nil {
		t.Fatal("no streams setup Job")
	}
	var raw struct {
		Spec struct {
			Template struct {
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	data, _ := os.ReadFile("k8s/streams-job.yaml")
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(raw.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmd, "jetinferctl streams setup") || !strings.Contains(cmd, "--replicas 3") {
		t.Errorf("streams job runs %q", cmd)
	}
}

// The compose file parses, builds from Dockerfiles that exist, mounts files
// that exist, and sets only variables the binaries read.
func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image   string `yaml:"image"`
			Command []string
			Build   struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nats", "redis", "ingest", "worker"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	for name, s := range c.Services {
		if s.Build.Dockerfile != "" {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		allowed := ingestEnv
		if name == "worker" {
			allowed = workerEnv
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, config.EnvPrefix) && !allowed[k] {
				t.Errorf("%s sets %s, which the binary does not read", name, k)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") && !strings.Contains(src, "models") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	data, err = os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &prom); err != nil || len(prom.ScrapeConfigs) != 2 {
		t.Fatalf("prometheus.yml: %v, %d scrape configs", err, len(prom.ScrapeConfigs))
	}
	// The rule files sit beside prometheus.yml in the container, as here.
	for _, f := range prom.RuleFiles {
		if !slices.Contains(c.Services["prometheus"].Volumes, "./prometheus/"+f+":/etc/prometheus/"+f+":ro") {
			t.Errorf("prometheus.yml loads %s, which compose does not mount beside it", f)
		}
	}
	if !slices.Contains(prom.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml does not load alerts.yml: %v", prom.RuleFiles)
	}
}

// TestAlertRules checks the alerting rules as `promtool check rules` does
// (YAML shape, PromQL, templates in annotations) and that every alert says
// how bad and what happened. internal/app checks their jetinfer_* series
// against what the binaries export.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(data, false, model.UTF8Validation)
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if !strings.HasPrefix(r.Alert, "Jetinfer") {
				t.Errorf("rule %q: want an alert named Jetinfer*", r.Alert+r.Record)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
		}
	}
	if n < 5 {
		t.Fatalf("%d alerting rules", n)
	}
}

// dockerfile is a Dockerfile's stages and instructions.
type dockerfile struct {
	stages []string            // FROM lines
	instr  map[string][]string // instruction → arguments, all stages
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{instr: map[string][]string{}}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		op, args, _ := strings.Cut(l, " ")
		op = strings.ToUpper(op)
		switch op {
		case "FROM", "RUN", "COPY", "ENV", "ENTRYPOINT", "WORKDIR", "USER", "EXPOSE", "ARG", "CMD":
		default:
			t.Errorf("%s: unknown instruction %q", path, op)
		}
		if op == "FROM" {
			d.stages = append(d.stages, args)
		}
		d.instr[op] = append(d.instr[op], args)
	}
	return d
}

var envRE = regexp.MustCompile(`\b(JETINFER_[A-Z0-9_]+)=(\S+)`)

func TestDockerfiles(t *testing.T) {
	cases := []struct {
		file, cmd, binary string
		cgo               bool
		env               map[string]bool
		must              []string // substrings some instruction must hold
	}{
		{"docker/ingest.Dockerfile", "./cmd/ingest", "/usr/local/bin/ingest", false, ingestEnv,
			[]string{"./cmd/jetinferctl", "distroless"}},
		{"docker/worker-cpu.Dockerfile", "./cmd/worker", "/usr/local/bin/worker", true, workerEnv,
			[]string{"onnxruntime-node@", "libonnxruntime.so.1", "JETINFER_DEVICE=cpu"}},
		{"docker/worker-cuda.Dockerfile", "./cmd/worker", "/usr/local/bin/worker", true, workerEnv,
			[]string{"com.github.asus4.onnxruntime.linux-x64-gpu@", "onnxruntime-node@", "libonnxruntime_providers_shared.so",
				"libonnxruntime_providers_cuda.so", "JETINFER_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1", "nvidia/cuda:", "JETINFER_DEVICE=cuda:0"}},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			d := parseDockerfile(t, c.file)
			if len(d.stages) < 2 {
				t.Fatalf("%d stages; want a build stage and a runtime stage", len(d.stages))
			}
			all := strings.Join(slices.Concat(d.instr["RUN"], d.instr["COPY"], d.instr["ENV"], d.stages), "\n")
			cgo := "CGO_ENABLED=0"
			if c.cgo {
				cgo = "CGO_ENABLED=1"
			}
			if !strings.Contains(all, cgo+" go build") || !strings.Contains(all, c.cmd) {
				t.Errorf("no `%s go build ... %s`", cgo, c.cmd)
			}
			for _, m := range c.must {
				if !strings.Contains(all, m) {
					t.Errorf("no instruction mentions %q", m)
				}
			}
			if ep := d.instr["ENTRYPOINT"]; len(ep) != 1 || !strings.Contains(ep[0], c.binary) {
				t.Errorf("ENTRYPOINT %v, want %s", ep, c.binary)
			}
			var ortLib string
			for _, e := range d.instr["ENV"] {
				for _, m := range envRE.FindAllStringSubmatch(e, -1) {
					if !c.env[m[1]] {
						t.Errorf("ENV %s is not a flag of the binary", m[1])
					}
					if m[1] == "JETINFER_ORT_LIB" {
						ortLib = m[2]
					}
				}
			}
			if c.cgo && (ortLib == "" || !strings.Contains(all, filepath.Dir(ortLib))) {
				t.Errorf("JETINFER_ORT_LIB %q is not where a COPY puts the library", ortLib)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
