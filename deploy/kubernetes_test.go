package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const kubeDir = "kubernetes"

// kustomization is what deploy/kubernetes/kustomization.yaml may say: a
// field not declared here fails the strict decoding, so a misspelt key
// (resource: for resources:) cannot pass unnoticed.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	Resources []string         `json:"resources"`
	Images    []kustomizeImage `json:"images"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

// kube is every object of deploy/kubernetes, decoded strictly into its
// k8s.io/api type.
type kube struct {
	files         []string // the manifest files, kustomization.yaml aside
	kustomization kustomization
	deployments   []*appsv1.Deployment
	services      []*corev1.Service
	pdbs          []*policyv1.PodDisruptionBudget
	jobs          []*batchv1.Job
	configMaps    map[string]*corev1.ConfigMap
	secrets       map[string]*corev1.Secret
	objects       []metav1.Object
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes one YAML document into obj, refusing unknown and
// duplicate fields.
func decodeStrict[T any](t *testing.T, where string, doc []byte) *T {
	t.Helper()
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return obj
}

func loadKube(t *testing.T) *kube {
	t.Helper()
	k := &kube{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	data, err := os.ReadFile(filepath.Join(kubeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k.kustomization = *decodeStrict[kustomization](t, "kustomization.yaml", data)
	entries, err := os.ReadDir(kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "kustomization.yaml" || (!strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml")) {
			continue
		}
		k.files = append(k.files, name)
		data, err := os.ReadFile(filepath.Join(kubeDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", name, i+1, err)
			}
			if tm == (metav1.TypeMeta{}) {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Fatalf("%s document %d: no apiVersion and kind", name, i+1)
				}
				continue
			}
			where := name + " " + tm.Kind
			var obj metav1.Object
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := decodeStrict[appsv1.Deployment](t, where, []byte(doc))
				k.deployments, obj = append(k.deployments, d), d
			case "v1 Service":
				s := decodeStrict[corev1.Service](t, where, []byte(doc))
				k.services, obj = append(k.services, s), s
			case "policy/v1 PodDisruptionBudget":
				p := decodeStrict[policyv1.PodDisruptionBudget](t, where, []byte(doc))
				k.pdbs, obj = append(k.pdbs, p), p
			case "batch/v1 Job":
				j := decodeStrict[batchv1.Job](t, where, []byte(doc))
				k.jobs, obj = append(k.jobs, j), j
			case "v1 ConfigMap":
				c := decodeStrict[corev1.ConfigMap](t, where, []byte(doc))
				k.configMaps[c.Name], obj = c, c
			case "v1 Secret":
				s := decodeStrict[corev1.Secret](t, where, []byte(doc))
				k.secrets[s.Name], obj = s, s
			default:
				t.Fatalf("%s: %s %s is not a kind this test knows; teach it", name, tm.APIVersion, tm.Kind)
			}
			if obj.GetName() == "" {
				t.Fatalf("%s: no metadata.name", where)
			}
			k.objects = append(k.objects, obj)
		}
	}
	return k
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// podSpecs are the pod templates of the Deployments and Jobs, by a name for messages.
func (k *kube) podSpecs() map[string]*corev1.PodTemplateSpec {
	m := map[string]*corev1.PodTemplateSpec{}
	for _, d := range k.deployments {
		m["Deployment "+d.Name] = &d.Spec.Template
	}
	for _, j := range k.jobs {
		m["Job "+j.Name] = &j.Spec.Template
	}
	return m
}

// kubeUses: each container's arguments and the CASSATA_* variables it
// gets, set one by one or from a ConfigMap or Secret.
func kubeUses(t *testing.T, k *kube) []use {
	t.Helper()
	var uses []use
	for where, tmpl := range k.podSpecs() {
		for _, c := range tmpl.Spec.Containers {
			if len(c.Command) > 0 {
				t.Fatalf("%s container %s: sets command, which replaces the image's /cassata entrypoint; use args", where, c.Name)
			}
			var env []string
			for _, e := range c.Env {
				env = append(env, e.Name)
			}
			for _, from := range c.EnvFrom {
				switch {
				case from.ConfigMapRef != nil:
					if cm := k.configMaps[from.ConfigMapRef.Name]; cm != nil {
						for key := range cm.Data {
							env = append(env, from.Prefix+key)
						}
					}
				case from.SecretRef != nil:
					if s := k.secrets[from.SecretRef.Name]; s != nil {
						for key := range s.StringData {
							env = append(env, from.Prefix+key)
						}
					}
				}
			}
			uses = append(uses, use{where: "kubernetes " + where + " container " + c.Name, args: c.Args, env: cassataEnv(env)})
		}
	}
	return uses
}

func TestKubernetesManifests(t *testing.T) {
	k := loadKube(t)

	t.Run("kustomization lists every manifest", func(t *testing.T) {
		kz := k.kustomization
		if kz.APIVersion != "kustomize.config.k8s.io/v1beta1" || kz.Kind != "Kustomization" {
			t.Errorf("kustomization.yaml: %s %s", kz.APIVersion, kz.Kind)
		}
		res := slices.Sorted(slices.Values(kz.Resources))
		if !slices.Equal(res, k.files) {
			t.Errorf("kustomization.yaml resources %v, want every manifest in the directory: %v", res, k.files)
		}
		for _, l := range kz.Labels {
			if l.IncludeSelectors {
				t.Error("kustomization.yaml: labels with includeSelectors change the Deployments' immutable selectors")
			}
		}
	})

	t.Run("namespace-agnostic", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(kubeDir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^namespace:`).Match(data) {
			t.Error("kustomization.yaml sets a namespace")
		}
		for _, o := range k.objects {
			if o.GetNamespace() != "" {
				t.Errorf("%s names the namespace %s", o.GetName(), o.GetNamespace())
			}
		}
	})

	t.Run("workloads", func(t *testing.T) {
		components := map[string]bool{}
		for _, d := range k.deployments {
			tmpl := &d.Spec.Template
			component := tmpl.Labels["app.kubernetes.io/component"]
			components[component] = true
			where := "Deployment " + d.Name
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(tmpl.Labels)) {
				t.Errorf("%s: selector %v does not select its pods %v (%v)", where, d.Spec.Selector, tmpl.Labels, err)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("%s: want at least 2 replicas", where)
			}
			if len(tmpl.Spec.Containers) != 1 {
				t.Fatalf("%s: want one container, got %d", where, len(tmpl.Spec.Containers))
			}
			c := tmpl.Spec.Containers[0]
			if !slices.Equal(c.Args, []string{component}) {
				t.Errorf("%s: runs %q, want cassata %s", where, c.Args, component)
			}
			port := parsePort(t, defaultPort(t, component))
			http := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" })
			if http < 0 || uint32(c.Ports[http].ContainerPort) != port {
				t.Errorf("%s: want containerPort %d named http (cassata %s's default), got %+v", where, port, component, c.Ports)
			}
			if got := envLiteral(c, "CASSATA_LISTEN"); got == "" || parsePort(t, portOf(t, got)) != port {
				t.Errorf("%s: CASSATA_LISTEN %q, want port %d", where, got, port)
			}
			checkProbe(t, where+" liveness", c.LivenessProbe, "/healthz", c)
			checkProbe(t, where+" readiness", c.ReadinessProbe, "/readyz", c)
			if c.StartupProbe != nil {
				checkProbe(t, where+" startup", c.StartupProbe, "/healthz", c)
			}
			if v := envLiteral(c, "CASSATA_SHUTDOWN_TIMEOUT"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Fatalf("%s: CASSATA_SHUTDOWN_TIMEOUT: %v", where, err)
				}
				if g := tmpl.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= d {
					t.Errorf("%s: terminationGracePeriodSeconds %v is not longer than CASSATA_SHUTDOWN_TIMEOUT %s", where, g, d)
				}
			}

			var pdbs []string
			for _, p := range k.pdbs {
				ps, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				if err == nil && !ps.Empty() && ps.Matches(labels.Set(tmpl.Labels)) {
					pdbs = append(pdbs, p.Name)
					switch {
					case p.Spec.MaxUnavailable != nil:
						if mu := p.Spec.MaxUnavailable.String(); mu == "0" || mu == "0%" {
							t.Errorf("PodDisruptionBudget %s: maxUnavailable %s blocks every drain", p.Name, p.Spec.MaxUnavailable)
						}
					case p.Spec.MinAvailable != nil:
						if d.Spec.Replicas != nil && p.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
							t.Errorf("PodDisruptionBudget %s: minAvailable %s blocks every drain", p.Name, p.Spec.MinAvailable)
						}
					default:
						t.Errorf("PodDisruptionBudget %s: neither minAvailable nor maxUnavailable", p.Name)
					}
				}
			}
			if len(pdbs) != 1 {
				t.Errorf("%s: want one PodDisruptionBudget selecting its pods, got %v", where, pdbs)
			}
		}
		if !components["server"] || !components["worker"] || len(components) != 2 {
			t.Errorf("Deployments of %v, want server and worker", components)
		}

		if len(k.jobs) != 1 {
			t.Fatalf("want one Job (migrate), got %d", len(k.jobs))
		}
		j := k.jobs[0]
		if cs := j.Spec.Template.Spec.Containers; len(cs) != 1 || !slices.Equal(cs[0].Args, []string{"migrate"}) {
			t.Errorf("Job %s: want one container running cassata migrate", j.Name)
		}
		if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
			t.Errorf("Job %s: restartPolicy %q", j.Name, rp)
		}
	})

	t.Run("service", func(t *testing.T) {
		if len(k.services) != 1 {
			t.Fatalf("want one Service (the server's), got %d", len(k.services))
		}
		s := k.services[0]
		var server *appsv1.Deployment
		for _, d := range k.deployments {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				if server != nil {
					t.Fatalf("Service %s selects the pods of %s and %s", s.Name, server.Name, d.Name)
				}
				server = d
			}
		}
		if len(s.Spec.Selector) == 0 || server == nil || server.Spec.Template.Labels["app.kubernetes.io/component"] != "server" {
			t.Fatalf("Service %s: selector %v does not select the server's pods", s.Name, s.Spec.Selector)
		}
		want := parsePort(t, defaultPort(t, "server"))
		c := server.Spec.Template.Spec.Containers[0]
		if len(s.Spec.Ports) != 1 || uint32(s.Spec.Ports[0].Port) != want || containerPort(c, s.Spec.Ports[0].TargetPort.String()) != int32(want) {
			t.Errorf("Service %s: ports %+v, want %d to the server's http port", s.Name, s.Spec.Ports, want)
		}
	})

	t.Run("securityContext and resources", func(t *testing.T) {
		for where, tmpl := range k.podSpecs() {
			pod := tmpl.Spec.SecurityContext
			if tmpl.Spec.HostNetwork || tmpl.Spec.HostPID || tmpl.Spec.HostIPC {
				t.Errorf("%s: shares a host namespace", where)
			}
			for _, c := range append(slices.Clone(tmpl.Spec.InitContainers), tmpl.Spec.Containers...) {
				checkSecurity(t, where+" container "+c.Name, pod, c.SecurityContext)
				checkResources(t, where+" container "+c.Name, c.Resources)
				if c.Image != "cassata" || !slices.ContainsFunc(k.kustomization.Images, func(i kustomizeImage) bool {
					return i.Name == c.Image && i.NewName != "" && i.NewTag != ""
				}) {
					t.Errorf("%s container %s: image %q, want cassata, set by kustomization.yaml's images", where, c.Name, c.Image)
				}
			}
		}
	})

	t.Run("config and secret references", func(t *testing.T) {
		if len(k.configMaps) != 1 || len(k.secrets) != 1 {
			t.Errorf("want a ConfigMap and a Secret example, got %d and %d", len(k.configMaps), len(k.secrets))
		}
		for name, s := range k.secrets {
			if len(s.Data) > 0 {
				t.Errorf("Secret %s: an example in data (base64) hides its placeholders; use stringData", name)
			}
			for key, v := range s.StringData {
				if !regexp.MustCompile(`<[^>]+>`).MatchString(v) {
					t.Errorf("Secret %s: %s=%q is not a marked placeholder <...>", name, key, v)
				}
			}
		}
		for where, tmpl := range k.podSpecs() {
			for _, c := range tmpl.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom == nil {
						continue
					}
					switch {
					case e.ValueFrom.SecretKeyRef != nil:
						ref := e.ValueFrom.SecretKeyRef
						if s := k.secrets[ref.Name]; s == nil || s.StringData[ref.Key] == "" {
							t.Errorf("%s: %s from Secret %s key %s, which the example lacks", where, e.Name, ref.Name, ref.Key)
						}
					case e.ValueFrom.ConfigMapKeyRef != nil:
						ref := e.ValueFrom.ConfigMapKeyRef
						if cm := k.configMaps[ref.Name]; cm == nil || cm.Data[ref.Key] == "" {
							t.Errorf("%s: %s from ConfigMap %s key %s, which it lacks", where, e.Name, ref.Name, ref.Key)
						}
					}
				}
				for _, from := range c.EnvFrom {
					if from.ConfigMapRef != nil && k.configMaps[from.ConfigMapRef.Name] == nil {
						t.Errorf("%s: envFrom ConfigMap %s, which is not here", where, from.ConfigMapRef.Name)
					}
					if from.SecretRef != nil && k.secrets[from.SecretRef.Name] == nil {
						t.Errorf("%s: envFrom Secret %s, which is not here", where, from.SecretRef.Name)
					}
				}
			}
		}
	})
}

// envLiteral is a container's variable set to a literal value, or "".
func envLiteral(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value
		}
	}
	return ""
}

// containerPort resolves a port name or number of c, 0 if c has no such port.
func containerPort(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || port == strconv.Itoa(int(p.ContainerPort)) {
			return p.ContainerPort
		}
	}
	return 0
}

func checkProbe(t *testing.T, where string, p *corev1.Probe, path string, c corev1.Container) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an HTTP GET probe of %s", where, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: probes %s, want %s", where, p.HTTPGet.Path, path)
	}
	if containerPort(c, p.HTTPGet.Port.String()) == 0 {
		t.Errorf("%s: probes port %s, which the container does not declare", where, p.HTTPGet.Port.String())
	}
}

// checkSecurity: non-root, read-only root file system, no privilege
// escalation, every capability dropped, the runtime's default seccomp
// profile; each set on the container or inherited from the pod.
func checkSecurity(t *testing.T, where string, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	t.Helper()
	if c == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	nonRoot := c.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", where)
	}
	for _, uid := range []*int64{c.RunAsUser, pod.RunAsUser} {
		if uid != nil && *uid == 0 {
			t.Errorf("%s: runAsUser 0", where)
		}
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if c.Privileged != nil && *c.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if c.Capabilities == nil || !slices.Contains(c.Capabilities.Drop, "ALL") || len(c.Capabilities.Add) > 0 {
		t.Errorf("%s: want capabilities drop [ALL] and none added, got %+v", where, c.Capabilities)
	}
	seccomp := c.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile is not RuntimeDefault", where)
	}
}

// checkResources: CPU and memory requests and limits, each request within
// its limit.
func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		limit, okLimit := r.Limits[name]
		if !okReq || !okLimit || req.IsZero() || limit.IsZero() {
			t.Errorf("%s: want %s requests and limits, got %v / %v", where, name, r.Requests, r.Limits)
			continue
		}
		if req.Cmp(limit) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, name, req.String(), limit.String())
		}
	}
}

// TestKustomizeBuild builds deploy/kubernetes as `kubectl apply -k` does
// (kustomize's krusty) and checks what comes out: every object once, the
// common labels, the image from kustomization.yaml's images, no namespace.
func TestKustomizeBuild(t *testing.T) {
	k := loadKube(t)
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), kubeDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubeDir, err)
	}
	if got, want := resources.Size(), len(k.objects); got != want {
		t.Errorf("kustomize build: %d objects, want the %d of the manifests", got, want)
	}
	img := k.kustomization.Images[0]
	wantImage := img.NewName + ":" + img.NewTag
	for _, r := range resources.Resources() {
		where := r.GetKind() + " " + r.GetName()
		if r.GetNamespace() != "" {
			t.Errorf("%s: namespace %s after the build", where, r.GetNamespace())
		}
		for key, value := range k.kustomization.Labels[0].Pairs {
			if r.GetLabels()[key] != value {
				t.Errorf("%s: label %s=%q, want %q", where, key, r.GetLabels()[key], value)
			}
		}
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var images []string
		switch r.GetKind() {
		case "Deployment":
			d := decodeStrict[appsv1.Deployment](t, where, doc)
			for _, c := range d.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
		case "Job":
			j := decodeStrict[batchv1.Job](t, where, doc)
			for _, c := range j.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
		}
		for _, image := range images {
			if image != wantImage {
				t.Errorf("%s: image %s after the build, want %s", where, image, wantImage)
			}
		}
	}
}
