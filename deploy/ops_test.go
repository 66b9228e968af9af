package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// opsPort is the port of an address flag value such as ":9090".
func opsPort(t *testing.T, what, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("%s: %q is not host:port", what, addr)
	}
	return p
}

// Ingest's metrics name every tenant: every deployment scrapes them from
// the operations port (--ops-addr), and no public Service or published
// port exposes that port.
func TestIngestMetricsScrapedFromOpsPortOnly(t *testing.T) {
	// Kubernetes.
	data, err := os.ReadFile("k8s/ingest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Port          int    `yaml:"port"`
		TargetPort    string `yaml:"targetPort"`
	}
	type doc struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Ports    []port `yaml:"ports"`
			Template struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
				Spec struct {
					Containers []struct {
						Env []struct {
							Name  string `yaml:"name"`
							Value string `yaml:"value"`
						} `yaml:"env"`
						Ports []port `yaml:"ports"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	var docs []doc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	var sawDeployment, sawOpsService bool
	for _, d := range docs {
		switch {
		case d.Kind == "Deployment" && d.Metadata.Name == "ingest":
			sawDeployment = true
			c := d.Spec.Template.Spec.Containers[0]
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			ops := ports["ops"]
			if ops == 0 || ops == ports["http"] {
				t.Fatalf("ingest container ports %v: want an ops port apart from http", ports)
			}
			if got := opsPort(t, "JETINFER_OPS_ADDR", env["JETINFER_OPS_ADDR"]); got != ops {
				t.Errorf("JETINFER_OPS_ADDR port %d, container ops port %d", got, ops)
			}
			if a := d.Spec.Template.Metadata.Annotations; a["prometheus.io/port"] != strconv.Itoa(ops) {
				t.Errorf("ingest scrape annotation port %q, want the ops port %d", a["prometheus.io/port"], ops)
			}
		case d.Kind == "Service" && d.Metadata.Name == "ingest":
			for _, p := range d.Spec.Ports {
				if p.TargetPort != "http" {
					t.Errorf("public ingest Service exposes %s (port %d): only http belongs there", p.TargetPort, p.Port)
				}
			}
		case d.Kind == "Service" && d.Metadata.Name == "ingest-ops":
			sawOpsService = true
			if len(d.Spec.Ports) != 1 || d.Spec.Ports[0].TargetPort != "ops" {
				t.Errorf("ingest-ops Service ports %+v: want the ops port alone", d.Spec.Ports)
			}
		}
	}
	if !sawDeployment || !sawOpsService {
		t.Fatalf("k8s/ingest.yaml: ingest Deployment %v, ingest-ops Service %v", sawDeployment, sawOpsService)
	}

	// Compose and its Prometheus.
	var c struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if data, err = os.ReadFile("compose.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	ing := c.Services["ingest"]
	ops := opsPort(t, "compose JETINFER_OPS_ADDR", ing.Environment["JETINFER_OPS_ADDR"])
	if ops == opsPort(t, "compose JETINFER_ADDR", ing.Environment["JETINFER_ADDR"]) {
		t.Fatalf("compose: ingest ops port %d is its API port", ops)
	}
	for _, p := range ing.Ports {
		if strings.HasSuffix(p, ":"+strconv.Itoa(ops)) && !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("compose publishes ingest's ops port beyond loopback: %s", p)
		}
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if data, err = os.ReadFile("prometheus/prometheus.yml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &prom); err != nil {
		t.Fatal(err)
	}
	want, found := "ingest:"+strconv.Itoa(ops), false
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "jetinfer-ingest" {
			continue
		}
		for _, s := range sc.StaticConfigs {
			for _, tg := range s.Targets {
				if tg != want {
					t.Errorf("prometheus scrapes ingest at %s, want its ops port %s", tg, want)
				}
				found = true
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml has no jetinfer-ingest target %s", want)
	}
}
