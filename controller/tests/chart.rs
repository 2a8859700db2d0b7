//! The Helm chart (`charts/ferry`), without helm: values are checked against the chart's JSON
//! schema, and the templates are rendered by a Go-template engine (gtmpl) with the few Helm
//! functions the chart uses, under the default values and under the `ci/` values files. Every
//! rendered document is parsed into its k8s-openapi type (and must survive a round trip, so a
//! misspelt field fails), then checked for what a platform team reviews: host networking,
//! least privilege per `l4.enabled`, probes, drain time, RBAC equal to ferry's API calls, and
//! arguments the real `ferry` binary accepts.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_controller::cluster::rbac::{CLUSTER_RULES, ELECTION_RULES, Rule};
use gtmpl::{Context, Func, FuncError, Template, Value as Tv};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const RELEASE: &str = "ferry";
const NAMESPACE: &str = "ferry-system";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ferry")
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn defaults() -> Value {
    yaml_file(&chart().join("values.yaml"))
}

/// Values as helm computes them: the file's values deep-merged over the defaults.
fn values_with(file: &str) -> Value {
    let mut values = defaults();
    merge(&mut values, yaml_file(&chart().join("ci").join(file)));
    values
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON schema")
}

fn schema_errors(values: &Value) -> Vec<String> {
    schema()
        .iter_errors(values)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn values_and_ci_values_validate_against_the_schema() {
    assert_eq!(schema_errors(&defaults()), Vec::<String>::new());
    for file in ["everything-values.yaml", "l4-values.yaml"] {
        assert_eq!(
            schema_errors(&values_with(file)),
            Vec::<String>::new(),
            "{file}"
        );
    }
}

#[test]
fn the_schema_rejects_typical_mistakes() {
    let mistakes: &[(&str, &str, Value)] = &[
        ("a port as a word", "/ports/http", json!("eighty")),
        ("a misspelt top-level key", "/hostnetwork", json!(true)),
        ("a misspelt nested key", "/l4/enable", json!(false)),
        ("a boolean as a string", "/rbac/create", json!("yes")),
        ("an unknown policy", "/loadBalance", json!("random")),
        ("a duration without unit", "/shutdown/delay", json!(5)),
        (
            "a duration in words",
            "/upstream/readTimeout",
            json!("a minute"),
        ),
        (
            "a Secret without namespace",
            "/defaultSSLCertificate",
            json!("tls"),
        ),
        ("a port out of range", "/ports/admin", json!(70000)),
        (
            "maxUnavailable in words",
            "/updateStrategy/maxUnavailable",
            json!("one"),
        ),
        (
            "a relative host path",
            "/l4/hostCgroupPath",
            json!("sys/fs/cgroup"),
        ),
        ("a flag without dashes", "/extraArgs", json!(["workers=2"])),
        ("an unknown log format", "/log/format", json!("xml")),
    ];
    for (what, pointer, value) in mistakes {
        let mut values = defaults();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        values
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{parent} is an object of values.yaml"))
            .insert(key.to_owned(), value.clone());
        let errors = schema_errors(&values);
        assert!(
            !errors.is_empty(),
            "{what} ({pointer}: {value}) is accepted"
        );
    }
}

// ---- Rendering -------------------------------------------------------------------------

thread_local! {
    /// `_helpers.tpl`, for `include`: gtmpl functions see only their arguments.
    static HELPERS: RefCell<String> = const { RefCell::new(String::new()) };
}

fn template() -> Template {
    let mut t = Template::default();
    t.add_funcs(&[
        ("include", include as Func),
        ("toYaml", to_yaml as Func),
        ("nindent", nindent as Func),
        ("default", default as Func),
        ("quote", quote as Func),
    ]);
    let helpers = HELPERS.with(|h| h.borrow().clone());
    t.add_template("_helpers.tpl", helpers)
        .expect("_helpers.tpl parses");
    t
}

fn arg<'a>(name: &str, args: &'a [Tv], n: usize) -> Result<&'a Tv, FuncError> {
    if args.len() == n {
        Ok(&args[n - 1])
    } else {
        Err(FuncError::ExactlyXArgs(name.to_owned(), n))
    }
}

fn text(value: &Tv) -> String {
    match value {
        Tv::NoValue | Tv::Nil => String::new(),
        other => other.to_string(),
    }
}

/// `include NAME DATA`: renders a named template to a string.
fn include(args: &[Tv]) -> Result<Tv, FuncError> {
    let data = arg("include", args, 2)?;
    let mut t = template();
    t.parse(format!("{{{{ template \"{}\" . }}}}", text(&args[0])))
        .map_err(|e| FuncError::Generic(e.to_string()))?;
    t.render(&Context::from(data.clone()))
        .map(Tv::from)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

/// `toYaml`: as helm, without the final newline.
fn to_yaml(args: &[Tv]) -> Result<Tv, FuncError> {
    let value = to_json(arg("toYaml", args, 1)?);
    let yaml = serde_norway::to_string(&value).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Tv::from(yaml.trim_end_matches('\n')))
}

/// `nindent N TEXT`: a newline, then every line of TEXT indented by N spaces.
fn nindent(args: &[Tv]) -> Result<Tv, FuncError> {
    let n = match arg("nindent", args, 2).map(|_| &args[0])? {
        Tv::Number(n) => n.as_u64().unwrap_or(0) as usize,
        _ => return Err(FuncError::UnableToConvertFromValue),
    };
    let pad = " ".repeat(n);
    let body = text(&args[1])
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Tv::from(format!("\n{body}")))
}

/// `default D V`: V unless it is empty (as Go templates judge), else D.
fn default(args: &[Tv]) -> Result<Tv, FuncError> {
    let value = arg("default", args, 2)?;
    let empty = match value {
        Tv::NoValue | Tv::Nil => true,
        Tv::Bool(b) => !b,
        Tv::String(s) => s.is_empty(),
        Tv::Array(a) => a.is_empty(),
        Tv::Map(m) | Tv::Object(m) => m.is_empty(),
        Tv::Number(n) => n.as_f64() == Some(0.0),
        Tv::Function(_) => false,
    };
    Ok(if empty {
        args[0].clone()
    } else {
        value.clone()
    })
}

/// `quote V`: a double-quoted string.
fn quote(args: &[Tv]) -> Result<Tv, FuncError> {
    let value = arg("quote", args, 1)?;
    Ok(Tv::from(
        serde_json::to_string(&text(value)).expect("a string serializes"),
    ))
}

fn to_template_value(value: &Value) -> Tv {
    match value {
        Value::Null => Tv::Nil,
        Value::Bool(b) => Tv::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Tv::from(u),
            (None, Some(i)) => Tv::from(i),
            _ => Tv::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Tv::from(s.as_str()),
        Value::Array(a) => Tv::Array(a.iter().map(to_template_value).collect()),
        Value::Object(o) => Tv::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_template_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(value: &Tv) -> Value {
    match value {
        Tv::NoValue | Tv::Nil | Tv::Function(_) => Value::Null,
        Tv::Bool(b) => Value::Bool(*b),
        Tv::String(s) => Value::String(s.clone()),
        Tv::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.as_f64().unwrap_or_default())),
        Tv::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        // serde_json's map is ordered: toYaml sorts keys, as helm's does.
        Tv::Map(m) | Tv::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// The chart rendered under `values`: every document of every template, and NOTES.txt.
struct Rendered {
    docs: Vec<Value>,
    notes: String,
}

fn render(values: &Value) -> Rendered {
    assert_eq!(
        schema_errors(values),
        Vec::<String>::new(),
        "helm refuses values the schema rejects"
    );
    let chart_yaml = yaml_file(&chart().join("Chart.yaml"));
    let context = to_template_value(&json!({
        "Values": values,
        "Release": {"Name": RELEASE, "Namespace": NAMESPACE, "Service": "Helm"},
        "Chart": {
            "Name": chart_yaml["name"],
            "Version": chart_yaml["version"],
            "AppVersion": chart_yaml["appVersion"],
        },
    }));
    let templates = chart().join("templates");
    HELPERS.with(|h| {
        *h.borrow_mut() = std::fs::read_to_string(templates.join("_helpers.tpl")).unwrap()
    });
    let mut files: Vec<_> = std::fs::read_dir(&templates)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut rendered = Rendered {
        docs: Vec::new(),
        notes: String::new(),
    };
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('_') {
            continue;
        }
        let mut t = template();
        t.parse(std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name} parses: {e}"));
        let out = t
            .render(&Context::from(context.clone()))
            .unwrap_or_else(|e| panic!("{name} renders: {e}"));
        if name == "NOTES.txt" {
            rendered.notes = out;
            continue;
        }
        for doc in out.split("\n---") {
            let doc: Value = serde_norway::from_str(doc)
                .unwrap_or_else(|e| panic!("{name} renders YAML: {e}\n{out}"));
            if !doc.is_null() {
                rendered.docs.push(doc);
            }
        }
    }
    rendered
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The one document of `kind`, as its k8s-openapi type.
    fn one<T: DeserializeOwned + Serialize>(&self, kind: &str) -> T {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "one {kind}: {all:#?}");
        typed(all[0])
    }
}

/// `doc` as `T`; fails on fields `T` does not have (they would not survive the round trip).
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let value: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{e}: {}", serde_json::to_string_pretty(doc).unwrap()));
    let back = serde_json::to_value(&value).unwrap();
    assert_eq!(
        &back, doc,
        "fields lost in the round trip: unknown or misplaced"
    );
    value
}

// ---- Properties ------------------------------------------------------------------------

fn ferry_container(ds: &DaemonSet) -> Container {
    let pod = ds.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1);
    pod.containers[0].clone()
}

fn capabilities(c: &Container) -> (Vec<String>, Vec<String>) {
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.clone())
        .expect("capabilities are set");
    (caps.drop.unwrap_or_default(), caps.add.unwrap_or_default())
}

/// What every rendering of the DaemonSet must hold.
fn check_daemonset(values: &Value, ds: &DaemonSet) {
    let spec = &ds.spec;
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let selector = spec.selector.match_labels.as_ref().unwrap();
    let labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "the pod carries the selector's {k}");
    }
    let rolling = spec
        .update_strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref();
    assert!(rolling.unwrap().max_unavailable.is_some());
    assert!(
        rolling.unwrap().max_surge.is_none(),
        "no surge on host ports"
    );

    let c = ferry_container(ds);
    // Ports and probes: the admin port serves /healthz and /readyz.
    let port = |name: &str| {
        c.ports
            .as_ref()
            .unwrap()
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("container port {name}"))
            .container_port
    };
    for name in ["http", "https", "admin"] {
        assert_eq!(
            i64::from(port(name)),
            values["ports"][name].as_i64().unwrap()
        );
    }
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("admin".into())
        );
    }
    // The downward API.
    let env = c.env.as_ref().unwrap();
    for (name, field) in [
        ("NODE_NAME", "spec.nodeName"),
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ] {
        let var = env.iter().find(|e| e.name == name).unwrap();
        let from = var.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(from.field_path, field);
    }
    // Security: never privileged; read-only root; seccomp; drop everything first.
    let security = c.security_context.as_ref().unwrap();
    assert_ne!(security.privileged, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        pod.security_context
            .as_ref()
            .unwrap()
            .seccomp_profile
            .as_ref()
            .unwrap()
            .type_,
        "RuntimeDefault"
    );
    assert_eq!(capabilities(&c).0, vec!["ALL"]);
    assert_ne!(pod.host_pid, Some(true));
    assert_ne!(pod.host_ipc, Some(true));

    // Kubernetes waits long enough for ferry's drain.
    let seconds = |d: &Value| humantime::parse_duration(d.as_str().unwrap()).unwrap();
    let drain =
        seconds(&values["shutdown"]["delay"]) + seconds(&values["shutdown"]["drainTimeout"]);
    let grace = Duration::from_secs(pod.termination_grace_period_seconds.unwrap() as u64);
    assert!(
        grace > drain,
        "terminationGracePeriodSeconds {grace:?} must exceed shutdown delay + drain {drain:?}"
    );
}

fn with_l4(ds: &DaemonSet, values: &Value) {
    let c = ferry_container(ds);
    let pod = ds.spec.template.spec.as_ref().unwrap();
    let mut expected: Vec<String> = ferry_dataplane::l4::CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    expected.push("NET_BIND_SERVICE".into());
    assert_eq!(
        capabilities(&c).1,
        expected,
        "exactly what the L4 path needs"
    );
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    // Host mounts: bpffs and the cgroup v2 hierarchy, nothing else.
    let volumes = pod.volumes.as_ref().unwrap();
    let host: BTreeSet<_> = volumes
        .iter()
        .map(|v| {
            v.host_path
                .as_ref()
                .expect("only hostPath volumes")
                .path
                .clone()
        })
        .collect();
    let l4 = &values["l4"];
    assert_eq!(
        host,
        BTreeSet::from([
            l4["hostBPFPath"].as_str().unwrap().to_owned(),
            l4["hostCgroupPath"].as_str().unwrap().to_owned()
        ])
    );
    let args = c.args.unwrap();
    assert!(args.contains(&"--l4=true".to_owned()));
    // The chart's mount of the host cgroup is what ferry attaches to (not the pod's own).
    let mount = c
        .volume_mounts
        .unwrap()
        .into_iter()
        .find(|m| m.name == "host-cgroup")
        .unwrap();
    assert!(args.contains(&format!("--cgroup-path={}", mount.mount_path)));
}

fn without_l4(ds: &DaemonSet) {
    let c = ferry_container(ds);
    let pod = ds.spec.template.spec.as_ref().unwrap();
    assert_eq!(capabilities(&c).1, vec!["NET_BIND_SERVICE"]);
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_ne!(security.run_as_user, Some(0));
    assert!(pod.volumes.is_none(), "no host mounts without the L4 path");
    assert!(c.args.unwrap().contains(&"--l4=false".to_owned()));
}

/// The chart's arguments, expanded as the kubelet does, are flags the real binary accepts.
fn ferry_accepts(ds: &DaemonSet) -> String {
    let args: Vec<String> = ferry_container(ds)
        .args
        .unwrap()
        .into_iter()
        .map(|a| a.replace("$(POD_IP)", "10.0.0.7"))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .arg("--check")
        .env_clear()
        .env("NODE_NAME", "node-a")
        .env("POD_NAME", "ferry-abcde")
        .env("POD_NAMESPACE", NAMESPACE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ferry refuses the chart's arguments {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn rules(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                for v in &r.verbs {
                    set.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    set
}

fn ferry_rules(list: &[Rule]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for r in list {
        for res in r.resources {
            for v in r.verbs {
                set.insert((r.api_group.to_owned(), res.to_string(), v.to_string()));
            }
        }
    }
    set
}

#[test]
fn defaults_render_a_hostnetwork_daemonset_with_the_l4_path_and_exact_rbac() {
    let values = defaults();
    let out = render(&values);
    let ds: DaemonSet = out.one("DaemonSet");
    check_daemonset(&values, &ds);
    with_l4(&ds, &values);
    let settings = ferry_accepts(&ds);
    assert!(settings.contains("node_name: Some(\n"), "{settings}");

    // RBAC: the rules of the ClusterRole and Role are exactly the calls ferry makes.
    let cluster_role: ClusterRole = out.one("ClusterRole");
    assert_eq!(
        rules(cluster_role.rules.as_deref().unwrap()),
        ferry_rules(CLUSTER_RULES)
    );
    let role: Role = out.one("Role");
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(
        rules(role.rules.as_deref().unwrap()),
        ferry_rules(ELECTION_RULES)
    );
    let sa: ServiceAccount = out.one("ServiceAccount");
    let sa_name = sa.metadata.name.unwrap();
    let pod_sa = ds.spec.template.spec.unwrap().service_account_name;
    assert_eq!(pod_sa.as_deref(), Some(sa_name.as_str()));
    let crb: ClusterRoleBinding = out.one("ClusterRoleBinding");
    assert_eq!(crb.role_ref.name, cluster_role.metadata.name.unwrap());
    assert_eq!(crb.subjects.unwrap()[0].name, sa_name);
    let rb: RoleBinding = out.one("RoleBinding");
    assert_eq!(rb.role_ref.name, role.metadata.name.unwrap());
    assert_eq!(rb.subjects.unwrap()[0].name, sa_name);

    let class: IngressClass = out.one("IngressClass");
    assert_eq!(class.metadata.name.as_deref(), Some("ferry"));
    assert_eq!(
        class.spec.unwrap().controller.as_deref(),
        Some(ferry_controller::config::CONTROLLER_NAME)
    );
    assert!(
        class.metadata.annotations.is_none(),
        "not the default class"
    );
    assert!(out.all("Service").is_empty() && out.all("ServiceMonitor").is_empty());
    assert!(out.notes.contains("ferry l4 dump"), "{}", out.notes);
    let kinds: BTreeSet<_> = out
        .docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet",
            "IngressClass",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ])
    );
}

#[test]
fn every_switch_flipped_renders_an_unprivileged_ingress_only_daemonset() {
    let values = values_with("everything-values.yaml");
    let out = render(&values);
    let ds: DaemonSet = out.one("DaemonSet");
    check_daemonset(&values, &ds);
    without_l4(&ds);
    assert_eq!(ds.metadata.name.as_deref(), Some("edge"));
    let pod = ds.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("edge-sa"));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert!(pod.affinity.is_some() && pod.tolerations.as_ref().unwrap().len() == 1);
    let c = ferry_container(&ds);
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/edge/ferry:0.1.0-test")
    );
    let settings = ferry_accepts(&ds);
    for expected in [
        "watch_ingress_without_class: true",
        "trust_forwarded_headers: true",
        "workers: 2",
        "admin_addr: 0.0.0.0:9254",
        "enabled: false", // status updates
        "l4: None",
        "\"edge-leader\"",
        "\"203.0.113.7\"",
    ] {
        assert!(settings.contains(expected), "{expected} in:\n{settings}");
    }
    assert!(c.env.unwrap().iter().any(|e| e.name == "RUST_BACKTRACE"));

    // No RBAC, no ServiceAccount; the class is the default one; metrics are scraped.
    for kind in [
        "ClusterRole",
        "Role",
        "ClusterRoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ] {
        assert!(
            out.all(kind).is_empty(),
            "{kind} rendered with rbac/serviceAccount off"
        );
    }
    let class: IngressClass = out.one("IngressClass");
    assert_eq!(class.metadata.name.as_deref(), Some("edge"));
    assert_eq!(
        class.metadata.annotations.unwrap()["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    let service: Service = out.one("Service");
    let spec = service.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].port, 9254);
    let pod_labels = ds.spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in spec.selector.unwrap() {
        assert_eq!(
            pod_labels.get(&k),
            Some(&v),
            "the metrics Service selects the pods"
        );
    }
    let monitor = out.all("ServiceMonitor")[0];
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service_labels = service.metadata.labels.unwrap();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(service_labels.get(k).map(String::as_str), v.as_str());
    }
    assert!(!out.notes.contains("ferry l4 dump"), "{}", out.notes);
}

#[test]
fn the_l4_knobs_reach_ferry() {
    let values = values_with("l4-values.yaml");
    let out = render(&values);
    let ds: DaemonSet = out.one("DaemonSet");
    check_daemonset(&values, &ds);
    with_l4(&ds, &values);
    let settings = ferry_accepts(&ds);
    for expected in [
        "\"eth0\"",
        "\"bond0\"",
        "connections: 1048576",
        "backends: 262144",
    ] {
        assert!(settings.contains(expected), "{expected} in:\n{settings}");
    }
    let sa: ServiceAccount = out.one("ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("ferry-node"));
}

/// helm prints numbers of a million and more as Go prints a float64 (`1e+06`); ferry takes
/// them as they come.
#[test]
fn ferry_accepts_numbers_in_the_form_helm_prints_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "run",
            "--check",
            "--l4-max-connections=1.048576e+06",
            "--workers=2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("connections: 1048576"));
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--check", "--l4-max-connections=1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a fraction is not a count");
}
